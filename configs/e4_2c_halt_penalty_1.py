"""E4.2c compute-aware halting: loss += 1.0 * sum(1 - sigmoid(q_halt)).

Question: how much accuracy does each saved supervision step cost (a point of the accuracy-vs-compute Pareto front)?

  python launch.py --config=configs/e4_2c_halt_penalty_1.py --workdir=gs://BUCKET/runs/e4_2c_halt_penalty_1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

Seeded and nested: every `subN` holds the same first N puzzles, built once, CSVs downloaded from the hub (or `--manual_dir=DIR_WITH_CSVS`).

Expected: accuracy-vs-steps Pareto point. Study ids: E4.2c.

Read eval `steps` and the adaptive-halting accuracy (reported by every evaluation); lambda = 0 is the
baseline. The study defined no halt cost; this one is the expected 'continue' probability per slot.
"""

from configs import args


def deltas(config, arg):
    config.experiment_id = "e4_2c_halt_penalty_1"
    config.act.halt_penalty = 1.0


def get_config(arg=None):
    return args.build(arg, deltas)
