"""contrib03 gradient checkpointing: recompute the with-gradient cycle (model.remat) to afford deeper n.

Question: how deep can the recursion go with rematerialisation, at what speed cost, and does depth pay?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:contrib03_l6,seed=1`):

  contrib03_l6: remat, n = 6. Expected same accuracy as baseline; memory/speed cost.
  contrib03_l12: remat, n = 12. Expected deeper recursion (author's prior: better accuracy).
  contrib03_l24: remat, n = 24. Expected 3-4x deeper, ~1.5x slower (author's prior).

Launch:

  python launch.py --config=configs/contrib03_remat.py:contrib03_l6 --workdir=gs://BUCKET/runs/contrib03_l6 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 2.9 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/contrib03_remat.py:contrib03_l12 --workdir=gs://BUCKET/runs/contrib03_l12 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 3.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/contrib03_remat.py:contrib03_l24 --workdir=gs://BUCKET/runs/contrib03_l24 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 3.6 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

contrib03_l6 vs the baseline measures the cost of remat alone (same maths); contrib03_l12 vs exp02a_06
its memory saving at the same depth. Read `examples_per_s` and the profiler's memory view.
"""

from configs import args

VARIANTS = {
    "contrib03_l6": {"model.remat": True},
    "contrib03_l12": {"model.remat": True, "model.L_cycles": 12},
    "contrib03_l24": {"model.remat": True, "model.L_cycles": 24},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
