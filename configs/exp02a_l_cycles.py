"""Exp 2a (67-config scheme): n = L_cycles, latent updates per high-level cycle, at T=3.

Question: what is the best number of latent recursion steps n?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp02a_01,seed=1`):

  exp02a_01: n = 2. Expected ~82% (author's prior).
  exp02a_04: n = 8. Expected ~87% (author's prior).
  exp02a_05: n = 10. Expected ~86% (author's prior).
  exp02a_06: n = 12. Expected ~85% (author's prior).

Launch:

  python launch.py --config=configs/exp02a_l_cycles.py:exp02a_01 --workdir=gs://BUCKET/runs/exp02a_01 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 5.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp02a_l_cycles.py:exp02a_04 --workdir=gs://BUCKET/runs/exp02a_04 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 12.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp02a_l_cycles.py:exp02a_05 --workdir=gs://BUCKET/runs/exp02a_05 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 15.0 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp02a_l_cycles.py:exp02a_06 --workdir=gs://BUCKET/runs/exp02a_06 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 17.5 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp02a_02 (n=4) is configs/e2_2c_t3_n4.py, exp02a_03 (n=6) the baseline. The paper's effective depth
is T(n+1)L_layers, not the study's H x L.
"""

from configs import args

VARIANTS = {
    "exp02a_01": {"model.L_cycles": 2},
    "exp02a_04": {"model.L_cycles": 8},
    "exp02a_05": {"model.L_cycles": 10},
    "exp02a_06": {"model.L_cycles": 12},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
