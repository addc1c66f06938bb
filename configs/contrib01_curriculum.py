"""contrib01 curriculum recursion: (L, H) = (2, 1) -> (4, 2) -> (6, 3) over the first 10k of 50k epochs.

Question: does a shallow-to-deep recursion curriculum reach the baseline's accuracy in fewer epochs?

  python launch.py --config=configs/contrib01_curriculum.py --workdir=gs://BUCKET/runs/contrib01_curriculum --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: ~87% reached ~30% sooner (author's prior).

The study's schedule exactly (start L=2, H=1, three settings, full depth after 20% of training). The
study's trainer silently dropped these flags; here base.py's curriculum fields drive the trainer.
Control: contrib01_baseline = the baseline.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "contrib01_curriculum"
    config.curriculum.enabled = True
    config.curriculum.ramp_fraction = 0.2


def get_config(arg=None):
    return args.build(arg, deltas)
