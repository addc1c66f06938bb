"""E4.4 recursive checkpoint averaging: evaluate the mean of the last 5 checkpoints too.

Question: does averaging the weights of the last checkpoints (SWA-like) match or beat the EMA?

  python launch.py --config=configs/e4_4_checkpoint_averaging.py --workdir=gs://BUCKET/runs/e4_4_checkpoint_averaging --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 'slight improvement?' (author's prior). Study ids: E4.4.

Checkpoints every 1000 steps, so the average spans the last ~5000 steps; the EMA eval is kept
alongside for the comparison. max_checkpoints grows from 3 so that 5 checkpoints exist.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4_4_checkpoint_averaging"
    config.eval.average_last_k = 5
    config.train.max_checkpoints = 5


def get_config(arg=None):
    return args.build(arg, deltas)
