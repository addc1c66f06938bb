"""E2.1b: the paper recipe without the EMA of the weights.

Question: is EMA still needed with synchronous data-parallel training (evaluated on the raw weights)?

  python launch.py --config=configs/e2_1_ema_off.py --workdir=gs://BUCKET/runs/e2_1_ema_off --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.0 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 79.9% (paper ablation). Study ids: E2.1b, exp08a.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_1_ema_off"
    config.optim.ema = False


def get_config(arg=None):
    return args.build(arg, deltas)
