"""Exp 2b (67-config scheme): T = H_cycles, high-level cycles, at n=6.

Question: what is the best number of high-level cycles T, and which matters more, T or n?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp02b_01,seed=1`):

  exp02b_01: T = 1 (no gradient-free cycle). Expected ~83% (author's prior).
  exp02b_05: T = 5. Expected ~87% (author's prior).

Launch:

  python launch.py --config=configs/exp02b_h_cycles.py:exp02b_01 --workdir=gs://BUCKET/runs/exp02b_01 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp02b_h_cycles.py:exp02b_05 --workdir=gs://BUCKET/runs/exp02b_05 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp02b_02 (T=2) is configs/e2_2b_t2_n6.py, exp02b_03 the baseline, exp02b_04 (T=4)
configs/e2_2e_t4_n6.py.
"""

from configs import args

VARIANTS = {
    "exp02b_01": {"model.H_cycles": 1},
    "exp02b_05": {"model.H_cycles": 5},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
