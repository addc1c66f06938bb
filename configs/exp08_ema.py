"""Exp 8 (67-config scheme): EMA rate of the evaluated weights.

Question: how sensitive is accuracy to the EMA rate?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp08b,seed=1`):

  exp08b: ema_rate 0.99. Expected ~86% (author's prior).
  exp08c: ema_rate 0.995. Expected ~87% (author's prior).
  exp08e: ema_rate 0.9995. Expected ~87% (author's prior).

Launch:

  python launch.py --config=configs/exp08_ema.py:exp08b --workdir=gs://BUCKET/runs/exp08b --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp08_ema.py:exp08c --workdir=gs://BUCKET/runs/exp08c --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp08_ema.py:exp08e --workdir=gs://BUCKET/runs/exp08e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp08a (no EMA) is configs/e2_1_ema_off.py (paper: 79.9%), exp08d (0.999) the baseline. The study's
JAX trainer had no EMA at all, so its five runs would not have differed.
"""

from configs import args

VARIANTS = {
    "exp08b": {"optim.ema_rate": 0.99},
    "exp08c": {"optim.ema_rate": 0.995},
    "exp08e": {"optim.ema_rate": 0.9995},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
