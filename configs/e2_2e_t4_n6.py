"""E2.2e: T=4, n=6.

Question: does one more high-level cycle than the paper help?

  python launch.py --config=configs/e2_2e_t4_n6.py --workdir=gs://BUCKET/runs/e2_2e_t4_n6 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~87-88% (author's prior). Study ids: E2.2e, exp02b_04.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_2e_t4_n6"
    config.model.H_cycles = 4


def get_config(arg=None):
    return args.build(arg, deltas)
