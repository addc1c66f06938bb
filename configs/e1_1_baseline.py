"""E1.1 baseline: the paper's Sudoku-Extreme TRM-MLP recipe, the reference arm of every ablation.

Question: does the TF/TPU port reproduce the reference's Sudoku-Extreme MLP-T result (E1.2: same run, compared with the reference curves)?

  python launch.py --config=configs/e1_1_baseline.py --workdir=gs://BUCKET/runs/e1_1_baseline --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 87.4% (paper, TRM-MLP). Study ids: E1.1, E1.2, E2.1a, E2.2d, E2.3a, E2.4c, E3.1a, E3.2a, E3.3c, E3.4b, E4.3b, baseline, exp01c, exp02a_03, exp02b_03, exp03b, exp04a_1000, exp04b_1000, exp05_d, exp07b, exp08d, exp09a, exp10b, contrib01_baseline, contrib02_baseline.

This is base.py unchanged (batch 768, lr 1e-4, 50k epochs ~ 65,104 steps, EMA 0.999, T=3, n=6, N_sup 16).
The study's 67-config 'baseline' used batch 6144 at the same lr (8x fewer updates, warm-up 25% of the
run); every id the study defined as equal to its baseline resolves here (see configs/README.md).
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e1_1_baseline"


def get_config(arg=None):
    return args.build(arg, deltas)
