"""E2.2b: T=2, n=6.

Question: what does one fewer high-level cycle cost at n=6?

  python launch.py --config=configs/e2_2b_t2_n6.py --workdir=gs://BUCKET/runs/e2_2b_t2_n6 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~83-86% (author's prior). Study ids: E2.2b, exp02b_02.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_2b_t2_n6"
    config.model.H_cycles = 2


def get_config(arg=None):
    return args.build(arg, deltas)
