"""E2.2a: T=2 high-level cycles, n=2 latent updates (the paper's smallest recursion).

Question: how much does shallower recursion cost (the paper's T/n table)?

  python launch.py --config=configs/e2_2a_t2_n2.py --workdir=gs://BUCKET/runs/e2_2a_t2_n2 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 5.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 73.7% (paper ablation). Study ids: E2.2a.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_2a_t2_n2"
    config.model.H_cycles = 2
    config.model.L_cycles = 2


def get_config(arg=None):
    return args.build(arg, deltas)
