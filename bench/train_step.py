"""Benchmark: throughput, MFU and memory of one TRM training (supervision) step through the real Trainer.

  python bench/train_step.py --variant=mlp_t --hidden=128 --batch=64 --H=3 --L=6 --dtype=float32 \
      [--steps=10 --warmup=3] [--strategy=default|mirrored2] [--remat] [--jit=auto|true|false] [--steps_per_loop=1] \
      [--compare=dtype,jit,remat] [--torch_reference=DIR --torch_python=PATH]

What is timed: `Trainer.train_loop(iterator, steps_per_loop)` on Sudoku shapes (seq 81, vocab 11, one puzzle
id, puzzle prefix 16). One step = the ACT carry update, forward + backward (XLA or not as
runtime.jit_compile=auto decides: not for attention on CPU; --jit overrides), AdamATan2 with
weight decay, sparse sign-SGD on the puzzle rows, EMA and the metric sums — the code `trm_tf.train.run`
executes. The batches come from the real input pipeline (`input_pipeline.distribute_train`) over a small
generated Sudoku TFDS dataset built with the repository's builder in a temp dir (or `--data_dir`).

Several configurations (`--compare`, `--torch_reference`) are run in one process and timed round-robin, one
step of each per round, so that the load of the shared machine hits all of them alike. The PyTorch reference
runs in a persistent subprocess (`--torch_python`) that imports the reference model from `--torch_reference`
at run time (nothing of it is copied here) and times forward + backward + an Adam step of the inner model with
the same config and batch (its ACT bookkeeping, sparse puzzle-embedding optimizer and EMA are not run, so the
reference does slightly less work per step than ours).

Output: one JSON line per TF configuration (the first one is the configuration given by the flags), with
examples/s, step-time median/p10/p90, FLOPs (model.flops_per_example(train=True),
docs/model.md#flops), achieved GFLOP/s, the measured matmul peak and MFU = achieved / peak, load
averages, process CPU time and memory.

Memory: CPU TF has no allocator statistics (tf.config.experimental.get_memory_info is GPU/TPU only), so the
script reports the process's peak RSS (getrusage ru_maxrss) before the Trainer is built, after it is built and
after the first (compiling) step and after the timed steps, plus the current RSS held after warm-up. With
several configurations in one process only the first one's peak delta is clean; run one configuration per
process to compare memory.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_path_and_env()

SUDOKU_SEQ_LEN, SUDOKU_VOCAB = 81, 11

# The reference side, run by --torch_python. It only imports the reference model from the directory given in
# its config (sys.argv[1]); the loss is written here from docs/model.md#losses (stablemax in float64
# + q_halt BCE). Protocol: prints one JSON "ready" line, then answers each stdin line "run N" with
# the N step times.
TORCH_DRIVER = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["reference_dir"])
import torch
import torch.nn.functional as F
from models.recursive_reasoning.trm import (
    TinyRecursiveReasoningModel_ACTV1Config as Config,
    TinyRecursiveReasoningModel_ACTV1_Inner as Inner,
    TinyRecursiveReasoningModel_ACTV1InnerCarry as Carry,
)

torch.manual_seed(0)
m = cfg["model"]
B, S, D, P = m["batch_size"], m["seq_len"], m["hidden_size"], m["puzzle_emb_len"]
model = Inner(Config(**m)).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
g = torch.Generator().manual_seed(0)
inputs = torch.randint(1, m["vocab_size"], (B, S), generator=g, dtype=torch.int32)
labels = torch.randint(2, m["vocab_size"], (B, S), generator=g).long()
batch = {"inputs": inputs, "puzzle_identifiers": torch.zeros(B, dtype=torch.int32)}
carry = Carry(z_H=model.H_init.expand(B, S + P, D).clone(), z_L=model.L_init.expand(B, S + P, D).clone())


def stablemax_loss(logits, q_halt):
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    logp = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != -100
    tok = -torch.gather(logp, -1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1) * mask
    counts = mask.sum(-1)
    lm = (tok.sum(-1) / counts.clamp_min(1)).sum()
    with torch.no_grad():
        seq_ok = ((mask & (logits.argmax(-1) == labels)).sum(-1) == counts).float()
    qh = F.binary_cross_entropy_with_logits(q_halt, seq_ok, reduction="sum")
    return lm + 0.5 * qh


def step():
    global carry
    carry, logits, (q_halt, _) = model(carry, batch)
    (stablemax_loss(logits, q_halt) / B).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


print(json.dumps({
    "ready": True,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "params": sum(p.numel() for p in model.parameters()),
}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    times = []
    c0 = time.process_time()
    for _ in range(int(cmd[1])):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "times": times,
        "cpu_s": time.process_time() - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
"""


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
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--steps", type=int, default=10, help="timed train_loop calls (per config)")
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


def config_variants(args, auto_jit: bool) -> list[dict]:
    """The configurations to time: the flags' one first, then one change per --compare axis value.

    `auto_jit` is what runtime.jit_compile="auto" resolves to for this run (trm_tf.distribute).
    """
    jit = {"auto": auto_jit, "true": True, "false": False}["false" if args.nojit else args.jit]
    base = {"dtype": args.dtype, "jit": jit, "remat": args.remat}
    out = [base]
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


def label_of(v: dict) -> str:
    """Short name of a configuration, e.g. "float32/nojit/remat"."""
    return f"{v['dtype']}{'' if v['jit'] else '/nojit'}{'/remat' if v['remat'] else ''}"


def make_config(args, variant: dict, data_dir: str, data_config: str):
    """The base (paper-recipe) config with the benchmark's model size and Sudoku data."""
    from configs import base

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
    c.runtime.jit_compile = "true" if variant["jit"] else "false"
    c.train.steps_per_loop = args.steps_per_loop
    return base.validate(c)


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


# ---------------------------------------------------------------------------------------------- peak


def measure_matmul_peak(tf, shapes: dict, dtypes: list[str], repeats: int) -> dict:
    """Best-of-N GFLOP/s of plain (oneDNN) and jit-compiled (XLA) matmuls of the given shapes."""
    out = {}
    jitted = tf.function(tf.linalg.matmul, jit_compile=True)
    for dt in dtypes:
        for name, (m, k, n) in shapes.items():
            a = tf.random.stateless_normal([m, k], seed=[1, 2], dtype=tf.float32)
            b = tf.random.stateless_normal([k, n], seed=[3, 4], dtype=tf.float32)
            a, b = tf.cast(a, dt), tf.cast(b, dt)
            flops = 2.0 * m * k * n
            # CPU eager ops and function calls return when the result is computed: no copy-out needed.
            for kind, fn in (("plain", tf.linalg.matmul), ("jit", jitted)):
                t = common.best_of(functools.partial(fn, a, b), repeats, warmup=2)
                out[f"{dt}/{name}/{kind}"] = round(flops / t / 1e9, 1)
    return out


# ---------------------------------------------------------------------------------------------- runners


class TFRun:
    """One Trainer + input iterator; `run_one()` times one `train_loop` call."""

    def __init__(self, tf, label, config, strategy, spec, steps_per_loop):
        from trm_tf.data import input_pipeline
        from trm_tf.trainer import Trainer

        self.tf, self.label, self.config, self.spl = tf, label, config, steps_per_loop
        self.mem = {"peak_rss_before_build_mb": common.peak_rss_mb()}
        self.rss_before = common.current_rss_mb()
        t0 = time.perf_counter()
        self.trainer = Trainer(config, strategy, spec, total_steps=10**6)
        self.iterator = iter(
            input_pipeline.distribute_train(
                strategy, spec, config.train.global_batch_size, config.seed, 0, config.data.prefetch
            )
        )
        self.build_s = time.perf_counter() - t0
        self.mem["peak_rss_after_build_mb"] = common.peak_rss_mb()
        self.times: list[float] = []
        self.cpu_s = 0.0
        self.first_call_s = None

    def _call(self) -> float:
        t0 = time.perf_counter()
        self.trainer.train_loop(self.iterator, self.spl)
        int(self.trainer.step.numpy())  # blocks until the loop's updates are done
        return time.perf_counter() - t0

    def warmup(self, n: int) -> None:
        """n untimed calls; the first one (trace + compile + a loop) is recorded as first_call_s."""
        self.first_call_s = self._call()  # trace + XLA compile + one loop
        self.mem["peak_rss_after_first_step_mb"] = common.peak_rss_mb()
        for _ in range(n - 1):
            self._call()
        self.mem["rss_held_after_warmup_mb"] = round(common.current_rss_mb() - self.rss_before, 1)

    def run_one(self) -> None:
        """One timed call; appends the time per step and adds the process CPU time."""
        c0 = common.cpu_seconds()
        t = self._call()
        self.cpu_s += common.cpu_seconds() - c0
        self.times.append(t / self.spl)

    def losses(self) -> float:
        """Mean training loss over all steps run (a sanity value: finite, ~ln(vocab) at init)."""
        m = self.trainer.read_metrics(max(1, int(self.trainer.step.numpy())))
        return m["loss"]


class TorchRun:
    """The PyTorch reference in a persistent subprocess (see TORCH_DRIVER)."""

    def __init__(self, args, dtype: str, steps_per_loop: int):
        self.label = "torch_reference"
        self.spl = steps_per_loop
        model = dict(
            batch_size=args.batch,
            seq_len=SUDOKU_SEQ_LEN,
            puzzle_emb_ndim=args.hidden,
            num_puzzle_identifiers=1,
            vocab_size=SUDOKU_VOCAB,
            H_cycles=args.H,
            L_cycles=args.L,
            H_layers=0,
            L_layers=args.L_layers,
            hidden_size=args.hidden,
            expansion=4.0,
            num_heads=args.num_heads,
            pos_encodings="none" if args.variant == "mlp_t" else "rope",
            halt_max_steps=16,
            halt_exploration_prob=0.1,
            forward_dtype=dtype,
            mlp_t=args.variant == "mlp_t",
            puzzle_emb_len=16,
        )
        cfg = {"reference_dir": os.path.abspath(args.torch_reference), "model": model}
        env = dict(os.environ)
        if args.torch_threads:
            env["OMP_NUM_THREADS"] = str(args.torch_threads)
        self.proc = subprocess.Popen(
            [args.torch_python, "-c", TORCH_DRIVER, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._read()
        self.times: list[float] = []
        self.cpu_s = 0.0
        self.peak_rss_mb = None

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"torch reference exited (code {self.proc.wait()})")
        return json.loads(line)

    def _run(self, n: int) -> dict:
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        out = self._read()
        self.peak_rss_mb = round(out["peak_rss_mb"], 1)
        return out

    def warmup(self, n: int) -> None:
        self.first_call_s = sum(self._run(self.spl)["times"])
        for _ in range(n - 1):
            self._run(self.spl)

    def run_one(self) -> None:
        out = self._run(self.spl)
        self.cpu_s += out["cpu_s"]
        self.times.append(sum(out["times"]) / self.spl)

    def close(self) -> None:
        """Stops the subprocess."""
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    """Builds the configurations, times them round-robin and prints one JSON line per TF config."""
    args = parse_args(argv)
    load_start = common.loadavg()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from trm_tf import distribute, runtime
    from trm_tf.models.layers import swiglu_intermediate_size

    # Logical devices must be configured before the first TF op (the dataset build runs ops).
    if args.strategy == "mirrored2":
        runtime.configure_cpu_devices(
            2
        )  # before get_strategy: it lists devices, which initialises TF
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

    probe = {"mlp_t": args.variant == "mlp_t"}
    variants = config_variants(args, distribute.resolve_jit_compile("auto", strategy, probe))
    # Matmul peak: a square matrix and the two big TRM matmuls (channel SwiGLU up and down projections).
    rows = args.batch * (SUDOKU_SEQ_LEN + 16)
    inter = swiglu_intermediate_size(args.hidden, 4.0)
    shapes = {
        "2048^3": (2048, 2048, 2048),
        "trm_up": (rows, args.hidden, 2 * inter),
        "trm_down": (rows, inter, args.hidden),
    }
    peak_dtypes = sorted({"float32"} | {v["dtype"] for v in variants})
    common.log("measuring the matmul peak")
    peak_before = measure_matmul_peak(tf, shapes, peak_dtypes, args.peak_repeats)

    runs: list = []
    for v in variants:
        common.log(f"building Trainer {label_of(v)}")
        cfg = make_config(args, v, data_dir, data_config)
        runs.append(TFRun(tf, label_of(v), cfg, strategy, spec, args.steps_per_loop))
    torch_run = None
    if args.torch_reference:
        if not args.torch_python:
            raise SystemExit("--torch_reference needs --torch_python")
        common.log("starting the torch reference")
        torch_run = TorchRun(args, args.dtype, args.steps_per_loop)
        runs.append(torch_run)
    for r in runs:
        common.log(f"warm-up {r.label}")
        r.warmup(max(1, args.warmup))
    load_timed_start = common.loadavg()
    common.log(f"timing {len(runs)} configuration(s) round-robin, {args.steps} calls each")
    wall0 = time.perf_counter()
    for _ in range(args.steps):
        for r in runs:
            r.run_one()
    timed_wall = time.perf_counter() - wall0
    load_timed_end = common.loadavg()
    if torch_run is not None:
        torch_run.close()
    peak_after = measure_matmul_peak(tf, shapes, peak_dtypes, args.peak_repeats)
    peak = {k: max(peak_before[k], peak_after[k]) for k in peak_before}

    torch_summary = None
    if torch_run is not None:
        st = common.summarize_ms(torch_run.times)
        torch_summary = {
            "torch_version": torch_run.info["torch"],
            "torch_threads": torch_run.info["threads"],
            "params": torch_run.info["params"],
            "examples_per_s": round(args.batch / (st["median_ms"] / 1e3), 2),
            "step_ms": st,
            "cpu_util": round(torch_run.cpu_s / sum(torch_run.times), 2),
            "first_step_s": round(torch_run.first_call_s, 2),
            "peak_rss_mb": torch_run.peak_rss_mb,
            "work": "inner fwd + bwd (stablemax f64 + q_halt BCE) + torch.optim.Adam",
        }
    for r in runs:
        if r is torch_run:
            continue
        model = r.trainer.model
        st = common.summarize_ms(r.times)
        step_s = st["median_ms"] / 1e3
        fpe = model.flops_per_example(train=True)
        fps = fpe * args.batch
        achieved = fps / step_s / 1e9
        dt = r.config.model.forward_dtype
        # The denominator: the best matmul rate measured in the run's compute dtype (f16 has no fast
        # CPU kernel, so its MFU is quoted against the f32 peak).
        peak_dt = dt if dt == "bfloat16" else "float32"
        peak_gflops = max(v for k, v in peak.items() if k.startswith(peak_dt + "/"))
        rec = {
            "bench": "train_step",
            "config": r.label,
            "variant": args.variant,
            "hidden": args.hidden,
            "batch": args.batch,
            "H": args.H,
            "L": args.L,
            "L_layers": args.L_layers,
            "dtype": dt,
            "jit_compile": bool(r.trainer.jit_compile),
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
            "matmul_gflops": peak,
            "matmul_gflops_before": peak_before,
            "matmul_gflops_after": peak_after,
            "first_call_s": round(r.first_call_s, 2),
            "build_s": round(r.build_s, 2),
            "cpu_s": round(r.cpu_s, 2),
            "cpu_util": round(r.cpu_s / sum(t * r.spl for t in r.times), 2),
            "memory": dict(r.mem, peak_rss_end_mb=common.peak_rss_mb()),
            "memory_note": "RSS of the whole process (getrusage maxrss / statm); TF CPU has no "
            "allocator stats",
            "loss_mean": round(r.losses(), 4),
            "loadavg_start": load_start,
            "loadavg_timed_start": load_timed_start,
            "loadavg_timed_end": load_timed_end,
            "timed_wall_s_all_configs": round(timed_wall, 1),
            "configs_in_run": [x.label for x in runs],
            "machine": common.machine_info(),
            "tf_version": tf.__version__,
        }
        if torch_summary is not None:
            rec["torch_reference"] = torch_summary
            rec["speedup_vs_torch"] = round(
                rec["examples_per_s"] / torch_summary["examples_per_s"], 2
            )
        common.print_json(rec)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
