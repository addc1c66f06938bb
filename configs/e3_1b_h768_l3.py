"""E3.1b: a wider and deeper TRM-MLP (hidden 768, 3 layers, 14.6M params).

Question: does a bigger network help at fixed recursion (the study's 'diminishing returns above 15M')?

  python launch.py --config=configs/e3_1b_h768_l3.py --workdir=gs://BUCKET/runs/e3_1b_h768_l3 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 20.9 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 14.6M params; 'diminishing returns' (author's prior). Study ids: E3.1b.

Held at the paper's batch 768 and lr 1e-4 (the E-scheme ran E3.1 at batch 2048 on its own base, which
confounds size with batch); use E1.3c's batch with `--config.train.global_batch_size` for that cross.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e3_1b_h768_l3"
    config.model.hidden_size = 768
    config.model.L_layers = 3


def get_config(arg=None):
    return args.build(arg, deltas)
