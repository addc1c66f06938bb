"""The CPU pilot of the study (issue #25): the four questions at CPU scale, on a Sudoku with search.

Question: which of the study's answers (recursion at larger batch, EMA, MLP-T vs attention, the
compute-accuracy frontier) show up, with seed-to-seed intervals, on a task where the arms separate?

Task: `sudoku_extreme/generated_extreme_mix` (built on first use, no download; docs/datasets.md): 1,000
training puzzles x (original + 100 shuffles) and 1,000 unseen test puzzles with at most 24 blanks and one
solution each; about half need search (backtrack rating >= 1: naked and hidden singles alone do not solve
them), the others are their easy twins (a few more clues, rating 0). Model: configs/replication_cpu.py's
baseline (MLP-T, hidden 64, T=3, n=2, N_sup 4, EMA 0.99, batch 64, lr 1e-3, float32). Every arm trains
1,200 steps (the batch arms: the same number of examples), evaluates all 1,000 test puzzles every 200
steps and keeps its best checkpoint; compute per example is in each run's run_summary.json.

Calibration (baseline, 2 cores shared with other jobs; docs/datasets.md#where-the-baseline-lands): on
puzzles that ALL need search it solved none in 600 steps (0.0% exact, 88.1% of cells, 765 s), hence the
mixed task, where seed 0 reached 2.1% / 24.3% / 62.0% / 76.4% exact at steps 600 / 900 / 1,200 / 1,500
(354 s to step 600), and seed 1 13.7% / 28.8% at 1,000 / 1,200 (1,172 s): 1,200 steps puts both in the
20-80% band.

  python launch.py --config=configs/pilot_cpu.py:variant=baseline --workdir=runs/pilot/baseline

Arms (variant: what differs from the baseline, `VARIED` below):
  baseline                          MLP-T, T=3, n=2, EMA 0.99, N_sup 4, batch 64, lr 1e-3
  Q2 (E2.1)  ema_off                optim.ema off
  Q3 (E2.3)  attention              self-attention + RoPE instead of the MLP-T mixer (same steps)
  Q1 (E2.2)  tn_2_1, tn_3_4, tn_4_2 model.H_cycles, model.L_cycles (T, n)
  Q1 (E1.3)  batch_128, batch_256   batch B with the linear LR rule re-anchored here: lr = 1e-3 * B/64,
                                    warm-up steps x 64/B, steps x 64/B (the same examples)
  Q4 (E2.4)  nsup_2, nsup_8         act.halt_max_steps (N_sup; eval follows)
  Q4 (E4.2)  halt_0p01, halt_0p1,   act.halt_penalty (lambda 0.01, 0.1, 1: E4.2's ladder)
             halt_1
  E4.1       curriculum             T, n grow from (2, 1) to (3, 2) over the first half of training

One sweep per question, three seeds each (`<root>/pilot_cpu_<arm>-seed<k>`; the baseline is in every
question's selection and trained once, a finished run is skipped):

  python sweep.py --pattern='^pilot_(baseline|ema_off)$' --seeds=0,1,2 --workdir_root=runs/pilot
  python sweep.py --pattern='^pilot_(baseline|attention)$' --seeds=0,1,2 --workdir_root=runs/pilot
  python sweep.py --pattern='^pilot_(baseline|tn_)' --seeds=0,1,2 --workdir_root=runs/pilot
  python sweep.py --pattern='^pilot_(baseline|batch_)' --seeds=0,1,2 --workdir_root=runs/pilot
  python sweep.py --pattern='^pilot_(baseline|nsup_|halt_)' --seeds=0,1,2 --workdir_root=runs/pilot
  python sweep.py --pattern='^pilot_(baseline|curriculum)$' --seeds=0,1,2 --workdir_root=runs/pilot

Wall time of a baseline run: about 10-12 min on 2 otherwise idle cores, about 20 min while other jobs
share them (the calibration runs above). Training cost scales with the network calls per supervision step, T * (n + 1): 9 for
the baseline, 4 / 15 / 12 for tn_2_1 / tn_3_4 / tn_4_2 (the batch arms: the same examples, so about the
same); attention needs about half the baseline's FLOPs per example (4.5e8 vs 8.6e8 in RESULTS.md's
replication), nsup_8 doubles the evaluations' cost. The 42 runs add up to about 42 baseline runs: 7-8
hours on 2 idle cores, more than the few hours aimed at (a budget of 1,000 steps saves a sixth, but seed 1
was at 13.7% there).

On a TPU slice, one run per arm:

  python launch.py --config=configs/pilot_cpu.py:baseline --workdir=gs://BUCKET/runs/pilot_cpu_baseline --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:ema_off --workdir=gs://BUCKET/runs/pilot_cpu_ema_off --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:attention --workdir=gs://BUCKET/runs/pilot_cpu_attention --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:tn_2_1 --workdir=gs://BUCKET/runs/pilot_cpu_tn_2_1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:tn_3_4 --workdir=gs://BUCKET/runs/pilot_cpu_tn_3_4 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.7 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:tn_4_2 --workdir=gs://BUCKET/runs/pilot_cpu_tn_4_2 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:batch_128 --workdir=gs://BUCKET/runs/pilot_cpu_batch_128 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 32, est. 0.7 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:batch_256 --workdir=gs://BUCKET/runs/pilot_cpu_batch_256 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 64, est. 0.9 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:nsup_2 --workdir=gs://BUCKET/runs/pilot_cpu_nsup_2 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:nsup_8 --workdir=gs://BUCKET/runs/pilot_cpu_nsup_8 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:halt_0p01 --workdir=gs://BUCKET/runs/pilot_cpu_halt_0p01 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:halt_0p1 --workdir=gs://BUCKET/runs/pilot_cpu_halt_0p1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:halt_1 --workdir=gs://BUCKET/runs/pilot_cpu_halt_1 --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)
  python launch.py --config=configs/pilot_cpu.py:curriculum --workdir=gs://BUCKET/runs/pilot_cpu_curriculum --tpu=local --config.data.data_dir=gs://BUCKET/tfds
  # Fits: v4-8 (per-chip batch 16, est. 0.6 GiB of 32 GiB HBM per chip)

Data: `sudoku_extreme/generated_extreme_mix`:

  tfds build tfds_builders/sudoku_extreme --config=generated_extreme_mix --data_dir=gs://BUCKET/tfds

Expected: the catalogue's column (configs/README.md): the paper's direction for Q1-Q3, Pareto points for Q4.
"""

import math

from configs import args, base, presets, replication_cpu

# The baseline's budget (its recipe is configs/replication_cpu.py's baseline); every arm changes only the
# fields its question varies.
STEPS = 1200
EVAL_EVERY = 200

VARIANTS = (
    "baseline",
    "ema_off",
    "attention",
    "tn_2_1",
    "tn_3_4",
    "tn_4_2",
    "batch_128",
    "batch_256",
    "nsup_2",
    "nsup_8",
    "halt_0p01",
    "halt_0p1",
    "halt_1",
    "curriculum",
)

# The fields each arm changes (tests/pilot_arms_test.py checks that an arm differs from the baseline
# in exactly these).
VARIED = {
    "baseline": (),
    "ema_off": ("optim.ema",),
    "attention": ("model.mlp_t", "model.pos_encodings"),
    "tn_2_1": ("model.H_cycles", "model.L_cycles"),
    "tn_3_4": ("model.L_cycles",),
    "tn_4_2": ("model.H_cycles",),
    "batch_128": (
        "train.global_batch_size",
        "optim.lr",
        "optim.lr_warmup_steps",
        "train.total_steps",
        "train.eval_every_steps",
        "train.checkpoint_every_steps",
    ),
    "nsup_2": ("act.halt_max_steps",),
    "nsup_8": ("act.halt_max_steps",),
    "halt_0p01": ("act.halt_penalty",),
    "halt_0p1": ("act.halt_penalty",),
    "halt_1": ("act.halt_penalty",),
    "curriculum": (
        "curriculum.enabled",
        "curriculum.start_H_cycles",
        "curriculum.start_L_cycles",
    ),
}
VARIED["batch_256"] = VARIED["batch_128"]


def linear_lr_batch(config, batch: int) -> None:
    """E1.3 at batch `batch`: `presets.linear_lr_batch` (lr proportional to the batch, the warm-up's
    examples kept) re-anchored on the baseline `config` holds (its batch, lr and warm-up), the step
    budget scaled so that every batch size sees the same examples, the eval batch kept."""
    o, t = config.optim, config.train
    b0, lr0, warmup0, eval_batch = (
        t.global_batch_size,
        o.lr,
        o.lr_warmup_steps,
        config.eval.global_batch_size,
    )
    ref = presets.linear_lr_batch(base.fields(), b0).optim  # the rule at the baseline batch
    presets.linear_lr_batch(config, batch)
    o.lr = lr0 * o.lr / ref.lr
    o.lr_warmup_steps = math.ceil(warmup0 * o.lr_warmup_steps / ref.lr_warmup_steps)
    t.total_steps = t.total_steps * b0 // batch
    t.eval_every_steps = t.checkpoint_every_steps = t.eval_every_steps * b0 // batch
    config.eval.global_batch_size = eval_batch


def deltas(config, arg):
    # The CPU replication's baseline recipe: hidden 64, 2 heads, T=3, n=2, N_sup 4, float32, lr 1e-3
    # (both), weight decay 0.1 (both), warm-up 100, EMA 0.99, batch 64, loops of 50 steps.
    replication_cpu.deltas(config, args.parse_arg("baseline", replication_cpu.VARIANTS))
    config.experiment_id = f"pilot_cpu_{arg.variant}"
    config.data.config = "generated_extreme_mix"
    m, o, t = config.model, config.optim, config.train
    t.total_steps = STEPS
    t.eval_every_steps = t.checkpoint_every_steps = EVAL_EVERY
    config.eval.global_batch_size, config.eval.subset_size = 256, -1
    v = arg.variant
    if v == "ema_off":
        o.ema = False
    elif v == "attention":
        presets.sudoku_attention(config)
    elif v.startswith("tn_"):
        m.H_cycles, m.L_cycles = (int(x) for x in v[3:].split("_"))
    elif v.startswith("batch_"):
        linear_lr_batch(config, int(v[6:]))
    elif v.startswith("nsup_"):
        config.act.halt_max_steps = int(v[5:])
    elif v.startswith("halt_"):
        config.act.halt_penalty = float(v[5:].replace("p", "."))
    elif v == "curriculum":
        cur = config.curriculum
        cur.enabled = True
        cur.start_H_cycles, cur.start_L_cycles = 2, 1


def get_config(arg=None):
    return args.build(arg, deltas, VARIANTS, variant="baseline")
