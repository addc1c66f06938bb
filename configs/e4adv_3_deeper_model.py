"""E-branch 'advanced' e4_3_deeper_model: 4 layers at n=6 (10.0M params).

Question: does a deeper network help at the same recursion (compare exp03d: 4 layers at n=3, paper 79.5%)?

  python launch.py --config=configs/e4adv_3_deeper_model.py --workdir=gs://BUCKET/runs/e4adv_3_deeper_model --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 18.9 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: none stated. Study ids: e4_3_deeper_model.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4adv_3_deeper_model"
    config.model.L_layers = 4


def get_config(arg=None):
    return args.build(arg, deltas)
