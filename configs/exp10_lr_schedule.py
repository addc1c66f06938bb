"""Exp 10 (67-config scheme): learning rate and schedule.

Question: how sensitive is TRM to the LR, and does cosine decay after warm-up help?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp10a,seed=1`):

  exp10a: lr = puzzle_emb_lr = 3e-5. Expected ~85% (author's prior).
  exp10c: lr = puzzle_emb_lr = 3e-4. Expected ~86% (author's prior).
  exp10d: cosine decay to 10% after warm-up. Expected ~87% (author's prior).
  exp10e: cosine decay to 1% after warm-up. Expected ~86% (author's prior).

Launch:

  python launch.py --config=configs/exp10_lr_schedule.py:exp10a --workdir=gs://BUCKET/runs/exp10a --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp10_lr_schedule.py:exp10c --workdir=gs://BUCKET/runs/exp10c --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp10_lr_schedule.py:exp10d --workdir=gs://BUCKET/runs/exp10d --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp10_lr_schedule.py:exp10e --workdir=gs://BUCKET/runs/exp10e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp10b (1e-4, constant) is the baseline.
"""

from configs import args

VARIANTS = {
    "exp10a": {"optim.lr": 3e-5, "optim.puzzle_emb_lr": 3e-5},
    "exp10c": {"optim.lr": 3e-4, "optim.puzzle_emb_lr": 3e-4},
    "exp10d": {"optim.lr_min_ratio": 0.1},
    "exp10e": {"optim.lr_min_ratio": 0.01},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
