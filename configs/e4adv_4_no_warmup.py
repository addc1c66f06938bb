"""E-branch 'advanced' e4_4_no_warmup: no learning-rate warm-up.

Question: is the 2000-step warm-up needed?

  python launch.py --config=configs/e4adv_4_no_warmup.py --workdir=gs://BUCKET/runs/e4adv_4_no_warmup --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: none stated. Study ids: e4_4_no_warmup.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4adv_4_no_warmup"
    config.optim.lr_warmup_steps = 0


def get_config(arg=None):
    return args.build(arg, deltas)
