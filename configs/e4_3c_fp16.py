"""E4.3c: float16 forward (the study's 'unstable' arm; no loss scaling, as in the study).

Question: is float16 (narrower range than bfloat16) stable for TRM's deep recursion?

  python launch.py --config=configs/e4_3c_fp16.py --workdir=gs://BUCKET/runs/e4_3c_fp16 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~85% 'unstable' (author's prior). Study ids: E4.3c, exp07c.

A non-finite loss stops the run with a failed run_summary.json (the last good checkpoint stays).
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4_3c_fp16"
    config.model.forward_dtype = "float16"


def get_config(arg=None):
    return args.build(arg, deltas)
