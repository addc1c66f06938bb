"""E-branch 'advanced' e4_2_longer_training: 100k epochs instead of 50k.

Question: is the paper's 50k-epoch budget converged?

  python launch.py --config=configs/e4adv_2_longer_training.py --workdir=gs://BUCKET/runs/e4adv_2_longer_training --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: none stated. Study ids: e4_2_longer_training.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4adv_2_longer_training"
    config.train.epochs = 100000


def get_config(arg=None):
    return args.build(arg, deltas)
