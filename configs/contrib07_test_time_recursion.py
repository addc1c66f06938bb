"""New: test-time recursion, evaluating the paper recipe with N_sup = 32 (trained with 16).

Question: does running more supervision steps at test time than in training raise accuracy?

  python launch.py --config=configs/contrib07_test_time_recursion.py --workdir=gs://BUCKET/runs/contrib07_test_time_recursion --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: new: accuracy vs test-time N_sup.

Training is the baseline's. To evaluate an existing baseline run instead, copy its checkpoints into a
new workdir and run this config with `--mode=eval`.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "contrib07_test_time_recursion"
    config.eval.halt_max_steps = 32


def get_config(arg=None):
    return args.build(arg, deltas)
