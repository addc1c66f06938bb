"""Exp 3 (67-config scheme): layers vs recursion at L_layers x n = 12, T=3.

Question: can recursion stand in for depth (parameters are NOT matched: 2.5M / 5.0M / 7.5M / 10.0M / 15.1M)?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp03a,seed=1`):

  exp03a: 1 layer, n = 12. Expected ~87%, 2.5M params (author's prior).
  exp03c: 3 layers, n = 4. Expected ~87%, 7.5M params (author's prior).
  exp03d: 4 layers, n = 3. Expected 79.5% (paper ablation: 4 layers, n=3).
  exp03e: 6 layers, n = 2. Expected ~85%, 15.1M params (author's prior).

Launch:

  python launch.py --config=configs/exp03_depth_vs_recursion.py:exp03a --workdir=gs://BUCKET/runs/exp03a --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 9.4 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp03_depth_vs_recursion.py:exp03c --workdir=gs://BUCKET/runs/exp03c --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.7 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp03_depth_vs_recursion.py:exp03d --workdir=gs://BUCKET/runs/exp03d --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 11.4 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp03_depth_vs_recursion.py:exp03e --workdir=gs://BUCKET/runs/exp03e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 12.8 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp03b (2 layers, n=6) is the baseline.
"""

from configs import args

VARIANTS = {
    "exp03a": {"model.L_layers": 1, "model.L_cycles": 12},
    "exp03c": {"model.L_layers": 3, "model.L_cycles": 4},
    "exp03d": {"model.L_layers": 4, "model.L_cycles": 3},
    "exp03e": {"model.L_layers": 6, "model.L_cycles": 2},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
