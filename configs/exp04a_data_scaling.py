"""Exp 4a (67-config scheme): number of training puzzles (x 1000 augmentations each).

Question: what is the smallest training set that works (fit acc = a - b * N^-c, N at 85%)?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp04a_100,seed=1`):

  exp04a_100: 100 puzzles. Expected ~75% (author's prior).
  exp04a_250: 250 puzzles. Expected ~80% (author's prior).
  exp04a_500: 500 puzzles. Expected ~85% (author's prior).
  exp04a_2000: 2000 puzzles. Expected ~87% (author's prior).

Launch:

  python launch.py --config=configs/exp04a_data_scaling.py:exp04a_100 --workdir=gs://BUCKET/runs/exp04a_100 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp04a_data_scaling.py:exp04a_250 --workdir=gs://BUCKET/runs/exp04a_250 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp04a_data_scaling.py:exp04a_500 --workdir=gs://BUCKET/runs/exp04a_500 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp04a_data_scaling.py:exp04a_2000 --workdir=gs://BUCKET/runs/exp04a_2000 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub100_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub100_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).
Data: `sudoku_extreme/sub2000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub2000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).
Data: `sudoku_extreme/sub250_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub250_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).
Data: `sudoku_extreme/sub500_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub500_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp04a_1000 is the baseline (the study used a separately drawn 1000-puzzle set there; our builds are
seeded and nested, so sub1000 is THE 1000 puzzles), exp04a_5000 is configs/e3_2b_data5k.py. Epochs
count puzzles, so the step count scales with N.
"""

from configs import args

VARIANTS = {
    "exp04a_100": {"data.config": "sub100_aug1000"},
    "exp04a_250": {"data.config": "sub250_aug1000"},
    "exp04a_500": {"data.config": "sub500_aug1000"},
    "exp04a_2000": {"data.config": "sub2000_aug1000"},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
