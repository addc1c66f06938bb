"""Exp 1 (67-config scheme): width scaling of TRM-MLP at L_layers 2, T=3, n=6.

Question: how does accuracy scale with width, and where does it saturate (fit acc = a - b * params^-c)?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:exp01a,seed=1`):

  exp01a: hidden 256, 4 heads. Expected ~83%, 1.48M params (author's prior).
  exp01b: hidden 384, 6 heads. Expected ~85%, 2.67M params (author's prior).
  exp01d: hidden 768. Expected ~88%, 9.76M params (author's prior).
  exp01e: hidden 1024. Expected ~88%, 17.6M params (author's prior).
  exp01f: hidden 1536. Expected ~88%, 38.1M params (author's prior).

Launch:

  python launch.py --config=configs/exp01_model_scaling.py:exp01a --workdir=gs://BUCKET/runs/exp01a --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 5.3 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp01_model_scaling.py:exp01b --workdir=gs://BUCKET/runs/exp01b --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 7.4 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp01_model_scaling.py:exp01d --workdir=gs://BUCKET/runs/exp01d --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 14.5 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp01_model_scaling.py:exp01e --workdir=gs://BUCKET/runs/exp01e --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 19.4 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/exp01_model_scaling.py:exp01f --workdir=gs://BUCKET/runs/exp01f --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 28.8 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

exp01c (hidden 512) is the baseline, configs/e1_1_baseline.py. Parameter counts are the real ones
(the study's column was wrong: h512 is 5.03M, not 7.1M). num_heads has no effect with the MLP-T mixer.
"""

from configs import args

VARIANTS = {
    "exp01a": {"model.hidden_size": 256, "model.num_heads": 4},
    "exp01b": {"model.hidden_size": 384, "model.num_heads": 6},
    "exp01d": {"model.hidden_size": 768},
    "exp01e": {"model.hidden_size": 1024},
    "exp01f": {"model.hidden_size": 1536},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
