"""Exp 4b (67-config scheme): augmentations per puzzle, 1000 puzzles.

Question: how many augmentations are enough?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp04b_0010,seed=1`):

  exp04b_0010: 10 augmentations. Expected ~78% (author's prior).

Launch:

  python launch.py --config=configs/exp04b_augmentation.py:exp04b_0010 --workdir=gs://BUCKET/runs/exp04b_0010 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug10`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug10 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp04b_0100/0500/2000 are configs/e3_3{a,b,d}_aug*.py (E3.3), exp04b_1000 the baseline.
"""

from configs import args

VARIANTS = {
    "exp04b_0010": {"data.config": "sub1000_aug10"},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
