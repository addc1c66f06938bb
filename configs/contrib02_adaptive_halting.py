"""contrib02 adaptive halting exploration: anneal the exploration probability 0.3 -> 0.05.

Question: does annealed exploration keep accuracy while the model learns to halt in fewer steps?

  python launch.py --config=configs/contrib02_adaptive_halting.py --workdir=gs://BUCKET/runs/contrib02_adaptive_halting --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: same accuracy, ~25% fewer steps (author's prior). Study ids: contrib02_adaptive.

Linear anneal over training: p = p0 - (step / total_steps) * (p0 - p_final). Control:
contrib02_baseline = the baseline (fixed 0.1). Compare eval `steps` and its adaptive-halting accuracy.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "contrib02_adaptive_halting"
    config.act.halt_exploration_prob = 0.3
    config.act.halt_exploration_final = 0.05


def get_config(arg=None):
    return args.build(arg, deltas)
