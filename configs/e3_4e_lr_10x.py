"""E3.4e: learning rate 1e-3 at the paper's batch 768 (paper: 1e-4).

Question: where is the best dense-parameter learning rate at the paper's batch (one axis of the LR x batch law)?

  python launch.py --config=configs/e3_4e_lr_10x.py --workdir=gs://BUCKET/runs/e3_4e_lr_10x --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: LR-law point. Study ids: E3.4e.

The batch axis is E1.3/exp06; the puzzle-embedding lr stays 1e-4 (exp10 changes both).
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e3_4e_lr_10x"
    config.optim.lr = 1e-3


def get_config(arg=None):
    return args.build(arg, deltas)
