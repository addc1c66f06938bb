"""contrib04 regularised recursion: penalise the size of the high-level update, λ·‖z_H(T) − z_H(T−1)‖².

Question: does pulling the recursion towards a fixed point give steadier trajectories and a small gain
(the study's expectation: "slight gain, more stable trajectories")?

Variants (the argument after the colon; `runlocal` and `seed=N` combine with it, e.g. `:contrib04_l0p1,seed=1`):

  contrib04_l0p01: λ = 0.01. Expected slight gain (author's prior).
  contrib04_l0p1: λ = 0.1 (the study id contrib04_regularized_recursion). Expected slight gain, more
    stable trajectories (author's prior).
  contrib04_l1: λ = 1.0. Expected slight gain (author's prior).
  λ = 0 is the baseline itself (`configs/e1_1_baseline.py`), not rerun.

Launch (or all three: `python sweep.py --pattern='contrib04_*' ...`):

  python launch.py --config=configs/contrib04_regularized_recursion.py:contrib04_l0p01 --workdir=gs://BUCKET/runs/contrib04_l0p01 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/contrib04_regularized_recursion.py:contrib04_l0p1 --workdir=gs://BUCKET/runs/contrib04_l0p1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/contrib04_regularized_recursion.py:contrib04_l1 --workdir=gs://BUCKET/runs/contrib04_l1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 10.1 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/sub1000_aug1000`:

  tfds build tfds_builders/sudoku_extreme --config=sub1000_aug1000 --data_dir=gs://BUCKET/tfds

The term (`act.recursion_reg`, trm_tf/act.py) is λ · Σ_b mean over positions and channels of
(z_H(T) − z_H(T−1))², in float32, added to the step's loss before the global-batch normalisation. The first
T−1 cycles run without gradient, so only the last update of the trajectory is penalised: the terms of the
earlier updates would be constants. The study leaves the norm's scale open; the per-element mean used here
keeps λ comparable across hidden sizes.
"""

from configs import args

VARIANTS = {
    "contrib04_l0p01": {"act.recursion_reg": 0.01},
    "contrib04_l0p1": {"act.recursion_reg": 0.1},
    "contrib04_l1": {"act.recursion_reg": 1.0},
}


def get_config(arg=None):
    return args.family(arg, VARIANTS)
