"""E2.2c: T=3, n=4.

Question: what do two fewer latent updates per cycle cost at T=3?

  python launch.py --config=configs/e2_2c_t3_n4.py --workdir=gs://BUCKET/runs/e2_2c_t3_n4 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 7.6 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~85% (author's prior). Study ids: E2.2c, exp02a_02.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_2c_t3_n4"
    config.model.L_cycles = 4


def get_config(arg=None):
    return args.build(arg, deltas)
