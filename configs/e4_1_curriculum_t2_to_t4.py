"""E4.1 adaptive recursion depth: T grows 2 -> 3 -> 4 over the first half of training.

Question: does starting shallow and deepening the recursion train faster or generalise better than a fixed T?

  python launch.py --config=configs/e4_1_curriculum_t2_to_t4.py --workdir=gs://BUCKET/runs/e4_1_curriculum_t2_to_t4 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: 'easier training?' (author's prior). Study ids: E4.1.

Three equal stages (T=2, 3, 4; n=6 throughout) over the first 50% of the steps (base curriculum
defaults). Controls: the baseline (fixed T=3) and e2_2e_t4_n6 (fixed T=4, the final depth).
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4_1_curriculum_t2_to_t4"
    config.model.H_cycles = 4
    config.curriculum.enabled = True
    config.curriculum.start_H_cycles = 2
    config.curriculum.start_L_cycles = 6


def get_config(arg=None):
    return args.build(arg, deltas)
