"""The baselines the TRM paper compares against, trained with TRM's Sudoku recipe
(docs/model.md#variants).

  python launch.py --config=configs/baselines.py:hrm --workdir=gs://BUCKET/runs/baseline_hrm --tpu=local \
      --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 192, est. 4.4 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/baselines.py:transformer --workdir=gs://BUCKET/runs/baseline_transformer ...
  # Fits: v4-8 (per-chip batch 192, est. 4.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/baselines.py:hrm,runlocal --workdir=/tmp/hrm      # CPU smoke run

Variants:
  hrm: HRM. Two attention networks of 4 blocks each (H_level, L_level), width 512, 8 heads, RoPE.
    H_cycles=2, L_cycles=2 and a one-position puzzle prefix. 1-step gradient: only the last z_L and z_H
    updates carry it. It halts when q_halt > q_continue and learns q_continue from the bootstrapped target
    (one extra forward). The paper quotes HRM at 55.0% on Sudoku-Extreme, from HRM's own training, which
    the TRM paper did not rerun.
  transformer: the reference's `transformers_baseline`. 8 post-norm attention blocks with 12 heads
    (head_dim 42, inner width 504), one pass per supervision step, no recursion.

Everything else is configs/base.py, TRM's Sudoku recipe: `sudoku_extreme/sub1000_aug1000`, AdamATan2 lr 1e-4
with weight decay 1.0, EMA, 16 supervision steps, 50k epochs. Any difference from e1_1_baseline is therefore
the architecture's. These runs are not ids of the study, so they are not in the catalogue registry.
"""

from configs import args, presets

VARIANTS = ("hrm", "transformer")


def deltas(config, arg):
    config.experiment_id = f"baseline_{arg.variant}"
    getattr(presets, arg.variant)(config)  # presets.hrm / presets.transformer


def get_config(arg=None):
    return args.build(arg, deltas, VARIANTS)
