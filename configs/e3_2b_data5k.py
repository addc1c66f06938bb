"""E3.2b: 5000 training puzzles instead of 1000 (x 1000 augmentations each).

Question: does more distinct data help beyond the paper's 1000 puzzles (the study's 'plateau around 5K')?

  python launch.py --config=configs/e3_2b_data5k.py --workdir=gs://BUCKET/runs/e3_2b_data5k --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub5000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub5000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~87% (author's prior). Study ids: E3.2b, exp04a_5000.

Epochs count puzzles, so 50k epochs over 5000 puzzles is 5x the optimizer steps of the baseline.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e3_2b_data5k"
    config.data.config = "sub5000_aug1000"


def get_config(arg=None):
    return args.build(arg, deltas)
