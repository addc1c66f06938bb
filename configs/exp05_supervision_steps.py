"""Exp 5 (67-config scheme): N_sup = halt_max_steps.

Question: what is the trade-off between the inference budget and accuracy, and does ACT learn to halt early?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp05_c,seed=1`):

  exp05_c: N_sup = 12. Expected ~86%, 8.1 steps (author's prior).
  exp05_e: N_sup = 24. Expected ~87%, 9.7 steps (author's prior).

Launch:

  python launch.py --config=configs/exp05_supervision_steps.py:exp05_c --workdir=gs://BUCKET/runs/exp05_c --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp05_supervision_steps.py:exp05_e --workdir=gs://BUCKET/runs/exp05_e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp05_a/b/f (4/8/32) are configs/e2_4{a,b,d}_nsup*.py (E2.4), exp05_d (16) the baseline.
"""

from configs import args

VARIANTS = {
    "exp05_c": {"act.halt_max_steps": 12},
    "exp05_e": {"act.halt_max_steps": 24},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
