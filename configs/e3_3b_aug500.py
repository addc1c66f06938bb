"""E3.3b: 1000 puzzles with 500 augmentations each (paper: 1000).

Question: how many augmentations are enough, and can augmentation stand in for data?

  python launch.py --config=configs/e3_3b_aug500.py --workdir=gs://BUCKET/runs/e3_3b_aug500 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug500`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug500 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~86% (author's prior). Study ids: E3.3b, exp04b_0500.

Same 1000 base puzzles as the baseline (seeded, nested builds); only the augmentation count changes.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e3_3b_aug500"
    config.data.config = "sub1000_aug500"


def get_config(arg=None):
    return args.build(arg, deltas)
