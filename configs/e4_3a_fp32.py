"""E4.3a: float32 forward (the baseline computes in bfloat16).

Question: what do bfloat16 activations cost or save in accuracy and speed against float32?

  python launch.py --config=configs/e4_3a_fp32.py --workdir=gs://BUCKET/runs/e4_3a_fp32 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 18.3 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~87%, 1.0x speed (author's prior). Study ids: E4.3a, exp07a.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4_3a_fp32"
    config.model.forward_dtype = "float32"


def get_config(arg=None):
    return args.build(arg, deltas)
