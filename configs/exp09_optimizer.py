"""Exp 9 (67-config scheme): the dense-parameter optimizer, selected for real.

Question: does AdamATan2 matter, or do AdamW / Lion do as well?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp09b,seed=1`):

  exp09b: AdamW, betas (0.9, 0.95). Expected ~86% (author's prior).
  exp09c: AdamW, betas (0.9, 0.99). Expected ~87% (author's prior).
  exp09d: AdamW, betas (0.9, 0.999). Expected ~86% (author's prior).
  exp09e: Lion, betas (0.9, 0.99), lr 1e-4 / 3, weight decay 3.0. Expected ~85% (author's prior).

Launch:

  python launch.py --config=configs/exp09_optimizer.py:exp09b --workdir=gs://BUCKET/runs/exp09b --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp09_optimizer.py:exp09c --workdir=gs://BUCKET/runs/exp09c --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp09_optimizer.py:exp09d --workdir=gs://BUCKET/runs/exp09d --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp09_optimizer.py:exp09e --workdir=gs://BUCKET/runs/exp09e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.0 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp09a (AdamATan2, (0.9, 0.95)) is the baseline. In the study exp09b equalled exp09a and exp09e
equalled exp09c (no optimizer field existed); here `optim.name` selects the optimizer. Lion's update
has unit size per coordinate, so it gets the Lion paper's 3x smaller lr and 3x larger weight decay
(lr * wd = 1e-4, the baseline's decoupled decay per step).
"""

from configs import args

VARIANTS = {
    "exp09b": {"optim.name": "adamw"},
    "exp09c": {"optim.name": "adamw", "optim.beta2": 0.99},
    "exp09d": {"optim.name": "adamw", "optim.beta2": 0.999},
    "exp09e": {
        "optim.name": "lion",
        "optim.beta2": 0.99,
        "optim.lr": 1e-4 / 3,
        "optim.weight_decay": 3.0,
    },
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
