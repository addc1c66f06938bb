"""Benchmark: throughput, MFU and memory of one TRM training (supervision) step through the real Trainer.

  python bench/train_step.py --variant=mlp_t --hidden=128 --batch=64 --H=3 --L=6 --dtype=float32 \
      [--dtypes=auto,bfloat16] [--steps=10 --warmup=3] [--strategy=default|mirrored2] [--remat] \
      [--jit=auto|true|false] [--steps_per_loop=1] [--compare=dtype,jit,remat] \
      [--torch_reference=DIR --torch_python=PATH --torch_dtypes=bfloat16,float32] [--rounds=3] \
      [--profile=DIR --profile_calls=3]

What is timed: `Trainer.train_loop(iterator, steps_per_loop)` on Sudoku shapes (seq 81, vocab 11, one puzzle
id, puzzle prefix 16). One step = the ACT carry update, forward + backward (arranged as
runtime.jit_compile=auto decides: XLA, except for attention or a bfloat16/float16 forward on CPU, where
TensorFlow's oneDNN kernels run the matmuls and, for bfloat16, XLA fusion clusters the element-wise
work; --jit overrides), AdamATan2 with weight decay, sparse sign-SGD on the puzzle rows, EMA and the
metric sums — the code `trm_tf.train.run` executes. `--dtype=auto` is the CPU default
(`trm_tf.runtime.resolve_forward_dtype`: bfloat16 on a CPU with AMX, else float32); `--dtypes` times
several of our dtypes in the same run. The batches come from the real input pipeline
(`input_pipeline.distribute_train`) over a small generated Sudoku TFDS dataset built with the
repository's builder in a temp dir (or `--data_dir`).

Several configurations (`--dtypes`, `--compare`, `--torch_reference`) are run in one process and timed
round-robin, one step of each per round, so that the load of the shared machine hits all of them alike.
The PyTorch reference runs in a persistent subprocess per dtype (`--torch_dtypes`; default: --dtype,
with auto read as bfloat16, the reference's own default) that imports the reference model from
`--torch_reference` at run time (nothing of it is copied here) and times forward + backward + an Adam
step of the inner model with the same config and batch (its ACT bookkeeping, sparse puzzle-embedding
optimizer and EMA are not run, so the reference does slightly less work per step than ours).

`--rounds=N` repeats the round-robin timing N times (`--steps` calls of each configuration per round);
with the reference, every round gives a speed-up (the reference's median step time over ours) per
reference dtype, and the record holds them (`vs_reference[dtype].speedup_per_round`) and their median
(`speedup_median`), the figure to quote on a shared machine. `--profile=DIR` then traces
`--profile_calls` more train_loop calls of each configuration (one subdir each; `tensorboard
--logdir=DIR`, Profile tab) and reports the seconds per step by op class (`op_seconds_per_step`:
oneDNN matmuls, XLA fusion clusters, casts, transposes, other TF ops). The runners live in
bench/train_step_runs.py.

Output: one JSON line per TF configuration, with examples/s, step-time median/p10/p90, FLOPs
(trm_tf.models.flops.flops_per_example(model, train=True), docs/model.md#flops), achieved GFLOP/s (the
reference's too, for the same FLOPs), the measured float32 and bfloat16 matmul peaks (oneDNN "plain" and
XLA "jit") and MFU = achieved / peak of the run's dtype, the CPU's bfloat16 matrix unit, load averages,
process CPU time and memory.

Memory: CPU TF has no allocator statistics (tf.config.experimental.get_memory_info is GPU/TPU only), so the
script reports the process's peak RSS (getrusage ru_maxrss) before the Trainer is built, after it is built and
after the first (compiling) step and after the timed steps, plus the current RSS held after warm-up. With
several configurations in one process only the first one's peak delta is clean; run one configuration per
process to compare memory.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import train_step_runs as runs_mod  # noqa: E402

common.setup_path_and_env()


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=("mlp_t", "attention"), default="mlp_t")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=64, help="global batch (examples per step)")
    p.add_argument("--H", type=int, default=3, help="H_cycles (T)")
    p.add_argument("--L", type=int, default=6, help="L_cycles (n)")
    p.add_argument("--L_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=8)
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="float32",
        help="model.forward_dtype (auto: the CPU default, trm_tf.runtime.resolve_forward_dtype)",
    )
    p.add_argument(
        "--dtypes",
        default="",
        help="comma list of our dtypes to time in the same run (default: --dtype), e.g. auto,bfloat16",
    )
    p.add_argument(
        "--torch_dtypes",
        default="",
        help="comma list of the reference's dtypes (default: --dtype, auto read as bfloat16, "
        "the reference's own default)",
    )
    p.add_argument(
        "--steps", type=int, default=10, help="timed train_loop calls per config and round"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="timing rounds; each gives a speed-up vs the reference, and the median is reported",
    )
    p.add_argument(
        "--profile",
        default="",
        help="after timing, write a TensorBoard profile of --profile_calls loops of each config under "
        "this dir (one subdir per config) and report seconds per step by op class",
    )
    p.add_argument("--profile_calls", type=int, default=3, help="train_loop calls in the profile")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (the first compiles)")
    p.add_argument("--steps_per_loop", type=int, default=1, help="steps per train_loop call")
    p.add_argument("--strategy", choices=("default", "mirrored2"), default="default")
    p.add_argument("--remat", action="store_true", help="model.remat (tf.recompute_grad)")
    p.add_argument(
        "--jit",
        choices=("auto", "true", "false"),
        default="auto",
        help="runtime.jit_compile (auto: XLA except attention on CPU, as training does)",
    )
    p.add_argument("--nojit", action="store_true", help="same as --jit=false")
    p.add_argument(
        "--compare",
        default="",
        help="comma list of axes to vary around the flags' config in the same run: dtype, jit, remat",
    )
    p.add_argument("--torch_reference", default="", help="checkout of TinyRecursiveModels")
    p.add_argument("--torch_python", default="", help="python with torch, einops, pydantic")
    p.add_argument(
        "--torch_threads", type=int, default=0, help="torch.set_num_threads (0: default)"
    )
    p.add_argument("--data_dir", default="", help="TFDS dir for the bench dataset (default: temp)")
    p.add_argument("--peak_repeats", type=int, default=5, help="best-of-N for the matmul peak")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------- configs


def config_variants(args) -> list[dict]:
    """The configurations to time: the flags' one(s) first (one per --dtypes entry), then one change
    per --compare axis value. `jit` is "auto" (runtime.jit_compile=auto: XLA, or not, as training
    decides for the dtype, with XLA fusion clusters for bfloat16 on CPU), True or False."""
    jit = {"auto": "auto", "true": True, "false": False}["false" if args.nojit else args.jit]
    dtypes = [d for d in (args.dtypes or args.dtype).split(",") if d]
    out = []
    for d in dtypes:
        if d not in ("auto", "float32", "bfloat16", "float16"):
            raise SystemExit(f"--dtypes: unknown dtype {d!r}")
        v = {"dtype": d, "jit": jit, "remat": args.remat}
        if v not in out:
            out.append(v)
    base = out[0]
    axes = [a for a in args.compare.split(",") if a]
    values = {
        "dtype": ("float32", "bfloat16", "float16"),
        "jit": (True, False),
        "remat": (False, True),
    }
    for axis in axes:
        if axis not in values:
            raise SystemExit(f"--compare: unknown axis {axis!r}; use {sorted(values)}")
        for v in values[axis]:
            cand = dict(base, **{axis: v})
            if cand not in out:
                out.append(cand)
    return out


def resolved_variant(v: dict, strategy, mlp_t: bool) -> dict:
    """A variant with what training would resolve: the dtype of "auto", whether XLA compiles the step
    and whether the element-wise ops form XLA fusion clusters (trm_tf.runtime)."""
    from trm_tf import distribute, runtime

    on_cpu = distribute.runs_on_cpu(strategy)
    dtype = runtime.resolve_forward_dtype(v["dtype"], on_cpu)
    model = {"mlp_t": mlp_t, "forward_dtype": dtype}
    xla = distribute.resolve_jit_compile(v["jit"], strategy, model)
    clusters = runtime.uses_fusion_clusters(v["jit"], xla, dtype, on_cpu)
    return dict(v, resolved_dtype=dtype, xla=xla, clusters=clusters)


def label_of(v: dict) -> str:
    """Short name of a resolved configuration, e.g. "auto=float32/xla", "bfloat16/fused", "float32/nojit/remat"."""
    dt = v["dtype"] if v["dtype"] == v["resolved_dtype"] else f"{v['dtype']}={v['resolved_dtype']}"
    kind = "xla" if v["xla"] else ("fused" if v["clusters"] else "nojit")
    return f"{dt}/{kind}{'/remat' if v['remat'] else ''}"


def make_config(args, variant: dict, data_dir: str, data_config: str):
    """The base (paper-recipe) config with the benchmark's model size and Sudoku data."""
    from configs import base
    from configs.validation import validate

    c = base.fields(seed=args.seed)
    c.data.data_dir = data_dir
    c.data.config = data_config
    c.data.build_if_missing = False
    m = c.model
    m.hidden_size = args.hidden  # model.puzzle_emb_ndim follows (tied, as in the paper)
    m.num_heads = args.num_heads
    m.H_cycles, m.L_cycles, m.L_layers = args.H, args.L, args.L_layers
    m.mlp_t = args.variant == "mlp_t"
    m.pos_encodings = "none" if m.mlp_t else "rope"  # the paper's two Sudoku recipes
    m.forward_dtype = variant["dtype"]
    m.remat = variant["remat"]
    c.train.global_batch_size = args.batch
    c.runtime.jit_compile = {"auto": "auto", True: "true", False: "false"}[variant["jit"]]
    c.train.steps_per_loop = args.steps_per_loop
    return validate(c)


def ensure_bench_dataset(data_dir: str, batch: int):
    """A generated Sudoku TFDS dataset with at least one batch of training examples (built once)."""
    from tests.testing.tiny_datasets import build_tiny_sudoku
    from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx

    n = max(40, math.ceil(batch / 4) + 1)  # x (1 + 3 shuffles) >= batch
    cfg = sx.SudokuConfig(
        name=f"bench_train_{n}",
        description="Benchmark-only generated config.",
        source="generated",
        seed=11,
        num_train=n,
        num_test=16,
        num_aug=3,
        num_blanks=(10, 20),
        require="singles",
    )
    return build_tiny_sudoku(data_dir, cfg), cfg.name


# ---------------------------------------------------------------------------------------------- main


def _setup(args, tf):
    """(strategy, data dir, its TemporaryDirectory or None, DatasetSpec, data config name)."""
    from trm_tf import distribute, runtime

    # Logical devices must be configured before the first TF op (the dataset build runs ops).
    if args.strategy == "mirrored2":
        runtime.configure_cpu_devices(2)  # before get_strategy: listing devices initialises TF
        strategy = distribute.get_strategy(num_logical_cpus=2)
    else:
        strategy = tf.distribute.get_strategy()
    tmp = None
    data_dir = args.data_dir
    if not data_dir:
        tmp = tempfile.TemporaryDirectory(prefix="trm_bench_")
        data_dir = tmp.name
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    spec, data_config = ensure_bench_dataset(data_dir, args.batch)
    return strategy, data_dir, tmp, spec, data_config


def _peak_shapes(args) -> dict:
    """A square matmul and the two big TRM matmuls (channel SwiGLU up and down projections)."""
    from trm_tf.models.primitives import swiglu_intermediate_size

    rows = args.batch * (runs_mod.SUDOKU_SEQ_LEN + 16)
    inter = swiglu_intermediate_size(args.hidden, 4.0)
    return {
        "2048^3": (2048, 2048, 2048),
        "trm_up": (rows, args.hidden, 2 * inter),
        "trm_down": (rows, inter, args.hidden),
    }


def time_rounds(runs: list, rounds: int, steps: int) -> list[float]:
    """`rounds` rounds of `steps` round-robin calls (one call of each run in turn); returns the wall
    time of each round. Each run's `times` gets the round's times appended; `round_ends` records
    where each round ends in that list."""
    walls = []
    for r in runs:
        r.round_ends = []
    for _ in range(rounds):
        wall0 = time.perf_counter()
        for _ in range(steps):
            for r in runs:
                r.run_one()
        walls.append(time.perf_counter() - wall0)
        for r in runs:
            r.round_ends.append(len(r.times))
    return walls


def round_medians(run) -> list[float]:
    """The median step time (seconds) of each timing round of a run."""
    starts = [0, *run.round_ends[:-1]]
    return [statistics.median(run.times[a:b]) for a, b in zip(starts, run.round_ends)]


def speedups(tf_run, torch_run) -> dict:
    """Per-round speed-ups (the reference's median step time over ours) and their median."""
    per = [t / o for o, t in zip(round_medians(tf_run), round_medians(torch_run))]
    return {
        "speedup_per_round": [round(x, 3) for x in per],
        "speedup_median": round(statistics.median(per), 3),
    }


def torch_summary(args, torch_run, flops_per_step: float) -> dict:
    """The reference's throughput record (its achieved rate counts our model's FLOPs: same model)."""
    st = common.summarize_ms(torch_run.times)
    return {
        "dtype": torch_run.dtype,
        "torch_version": torch_run.info["torch"],
        "torch_threads": torch_run.info["threads"],
        "params": torch_run.info["params"],
        "examples_per_s": round(args.batch / (st["median_ms"] / 1e3), 2),
        "achieved_gflops": round(flops_per_step / (st["median_ms"] / 1e3) / 1e9, 1),
        "step_ms": st,
        "cpu_util": round(torch_run.cpu_s / sum(torch_run.times), 2),
        "first_step_s": round(torch_run.first_call_s, 2),
        "peak_rss_mb": torch_run.peak_rss_mb,
        "work": "inner fwd + bwd (stablemax f64 + q_halt BCE) + torch.optim.Adam",
    }


def tf_record(args, r, peak: dict) -> dict:
    """The throughput / MFU / memory record of one TF configuration (without the run-wide fields)."""
    from trm_tf.models.flops import flops_per_example

    model = r.trainer.model
    st = common.summarize_ms(r.times)
    step_s = st["median_ms"] / 1e3
    fpe = flops_per_example(model, train=True)
    fps = fpe * args.batch
    achieved = fps / step_s / 1e9
    dt = r.config.model.forward_dtype
    # The denominator: the best matmul rate measured in the run's compute dtype (f16 has no fast
    # CPU kernel, so its MFU is quoted against the f32 peak).
    peak_dt = dt if dt == "bfloat16" else "float32"
    peak_gflops = max(v for k, v in peak.items() if k.startswith(peak_dt + "/"))
    return {
        "bench": "train_step",
        "config": r.label,
        "variant": args.variant,
        "hidden": args.hidden,
        "batch": args.batch,
        "H": args.H,
        "L": args.L,
        "L_layers": args.L_layers,
        "dtype": dt,
        "dtype_setting": r.variant["dtype"],
        "jit_compile": bool(r.trainer.jit_compile),
        "xla_fusion_clusters": bool(r.trainer.fusion_clusters),
        "cpu_bf16_matrix_unit": r.trainer.cpu_bf16_matrix_unit,
        "remat": bool(r.config.model.remat),
        "strategy": args.strategy,
        "steps_per_loop": args.steps_per_loop,
        "params": int(model.num_params()),
        "examples_per_s": round(args.batch / step_s, 2),
        "mfu": round(achieved / peak_gflops, 4),
        "step_ms": st,
        "flops_per_example": int(fpe),
        "flops_per_step": int(fps),
        "achieved_gflops": round(achieved, 1),
        "peak_gflops": peak_gflops,
        "peak_dtype": peak_dt,
        "first_call_s": round(r.first_call_s, 2),
        "build_s": round(r.build_s, 2),
        "cpu_s": round(r.cpu_s, 2),
        "cpu_util": round(r.cpu_s / sum(t * r.spl for t in r.times), 2),
        "memory": dict(r.mem, peak_rss_end_mb=common.peak_rss_mb()),
        "memory_note": "RSS of the whole process (getrusage maxrss / statm); TF CPU has no "
        "allocator stats",
        "loss_mean": round(r.losses(), 4),
        # --profile: seconds per call by op class (train_step_runs.op_class_seconds) and the trace
        "op_seconds_per_step": getattr(r, "op_seconds", None),
        "profile_dir": getattr(r, "profile_dir", None),
    }


def print_records(args, runs: list, torch_runs: list, peak: dict, run_wide: dict) -> None:
    """One JSON line per TF configuration, with each reference dtype's record and the speed-ups."""
    for r in runs:
        rec = tf_record(args, r, peak)
        rec.update(run_wide)
        if torch_runs:
            rec["torch_reference"] = {
                t.dtype: torch_summary(args, t, rec["flops_per_step"]) for t in torch_runs
            }
            rec["vs_reference"] = {
                t.dtype: dict(
                    speedup=round(
                        rec["examples_per_s"] / rec["torch_reference"][t.dtype]["examples_per_s"],
                        3,
                    ),
                    **speedups(r, t),
                )
                for t in torch_runs
            }
        common.print_json(rec)


def main(argv=None) -> None:
    """Builds the configurations, times them round-robin and prints one JSON line per TF config."""
    args = parse_args(argv)
    load_start = common.loadavg()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from trm_tf import runtime  # noqa: F401  (sets the XLA clustering flags before any function runs)

    strategy, data_dir, tmp, spec, data_config = _setup(args, tf)
    variants = [
        resolved_variant(v, strategy, args.variant == "mlp_t") for v in config_variants(args)
    ]
    shapes = _peak_shapes(args)
    peak_dtypes = sorted({"float32", "bfloat16"})
    common.log("measuring the matmul peak")
    peak_before = runs_mod.measure_matmul_peak(tf, shapes, peak_dtypes, args.peak_repeats)
    runs: list = []
    for v in variants:
        common.log(f"building Trainer {label_of(v)}")
        cfg = make_config(args, v, data_dir, data_config)
        run = runs_mod.TFRun(tf, label_of(v), cfg, strategy, spec, args.steps_per_loop)
        run.variant = v
        common.log(f"warm-up {run.label}")
        run.warmup(max(1, args.warmup))
        runs.append(run)
    torch_runs: list = []
    if args.torch_reference:
        if not args.torch_python:
            raise SystemExit("--torch_reference needs --torch_python")
        default = "bfloat16" if args.dtype == "auto" else args.dtype
        for dt in [d for d in (args.torch_dtypes or default).split(",") if d]:
            common.log(f"starting the torch reference ({dt})")
            t = runs_mod.TorchRun(args, dt, args.steps_per_loop)
            t.warmup(max(1, args.warmup))
            torch_runs.append(t)
    load_timed_start = common.loadavg()
    everything = runs + torch_runs
    common.log(
        f"timing {len(everything)} configuration(s) round-robin: {args.rounds} x {args.steps} calls"
    )
    walls = time_rounds(everything, args.rounds, args.steps)
    load_timed_end = common.loadavg()
    for t in torch_runs:
        t.close()
    if args.profile:
        for r in runs:
            common.log(f"profiling {args.profile_calls} train_loop calls of {r.label}")
            r.profile_dir = os.path.join(args.profile, r.label.replace("/", "_").replace("=", "-"))
            runs_mod.profile_loops(tf, r, r.profile_dir, args.profile_calls)
            r.op_seconds = runs_mod.op_class_seconds(r.profile_dir, args.profile_calls)
    peak_after = runs_mod.measure_matmul_peak(tf, shapes, peak_dtypes, args.peak_repeats)
    peak = {k: max(peak_before[k], peak_after[k]) for k in peak_before}
    run_wide = dict(
        matmul_gflops=peak,
        matmul_gflops_before=peak_before,
        matmul_gflops_after=peak_after,
        loadavg_start=load_start,
        loadavg_timed_start=load_timed_start,
        loadavg_timed_end=load_timed_end,
        timed_wall_s_all_configs=round(sum(walls), 1),
        rounds=args.rounds,
        configs_in_run=[x.label for x in everything],
        machine=dict(common.machine_info(), bf16_matrix_unit=runtime.cpu_bf16_matrix_unit()),
        tf_version=tf.__version__,
    )
    print_records(args, runs, torch_runs, peak, run_wide)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
