"""E2.4d: N_sup = 32 deep-supervision steps (paper: 16).

Question: how does the number of supervision steps trade compute for accuracy, and does ACT halt early?

  python launch.py --config=configs/e2_4d_nsup32.py --workdir=gs://BUCKET/runs/e2_4d_nsup32 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~87% (author's prior). Study ids: E2.4d, exp05_f.

Also compare eval `exact_accuracy/step_k` and `steps` with the baseline's.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e2_4d_nsup32"
    config.act.halt_max_steps = 32


def get_config(arg=None):
    return args.build(arg, deltas)
