"""Shared helpers of the benchmark scripts: machine facts, load, timing statistics, memory, JSON output.

Nothing here imports TensorFlow, so the scripts can set environment variables (log level, logical CPU
devices) before TF starts. The machine is shared with other jobs: every script records the 1-minute load
average before and after, process CPU time next to wall time, and quotes medians, never means.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_path_and_env() -> None:
    """Puts the repository on sys.path and quiets TF's C++ start-up logs (before `import tensorflow`)."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """CPU model, usable CPU count, total RAM and Python version."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 0
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cpus": cpus,
        "mem_gib": mem_gb,
        "python": platform.python_version(),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (getrusage ru_maxrss; KiB on Linux), in MiB.

    It only ever grows, so a phase's peak is visible only as the difference of two readings when the
    phase exceeds every earlier peak.
    """
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def current_rss_mb() -> float:
    """Current resident set size of this process (/proc/self/statm), in MiB; -1 if unavailable."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError):
        return -1.0


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    return time.process_time()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 100]) of a non-empty sequence."""
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def summarize_ms(seconds: Sequence[float]) -> dict:
    """Median / p10 / p90 / min of a list of durations in seconds, as milliseconds."""
    return {
        "median_ms": round(statistics.median(seconds) * 1e3, 2),
        "p10_ms": round(percentile(seconds, 10) * 1e3, 2),
        "p90_ms": round(percentile(seconds, 90) * 1e3, 2),
        "min_ms": round(min(seconds) * 1e3, 2),
        "n": len(seconds),
    }


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Shortest wall time (seconds) of `repeats` calls of `fn` after `warmup` untimed calls.

    `fn` must block until its work is done (e.g. end with `.numpy()` on a TF result).
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def print_json(record: dict) -> None:
    """Prints one JSON line to stdout and flushes (stdout carries only results; logs go to stderr)."""
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    """Progress message on stderr with the current 1-minute load."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}\n")
    sys.stderr.flush()


def reference_model_config(
    *,
    variant: str,
    batch: int,
    seq_len: int,
    vocab: int,
    puzzles: int,
    hidden: int,
    H: int,
    L: int,
    L_layers: int,
    num_heads: int,
    halt_max_steps: int,
    dtype: str,
    puzzle_emb_len: int,
) -> dict:
    """The PyTorch reference's TRM config fields for a TRM-MLP ("mlp_t") or attention model (our model
    builder takes the same names): puzzle embedding as wide as the model, RoPE for attention only."""
    return dict(
        batch_size=batch,
        seq_len=seq_len,
        puzzle_emb_ndim=hidden,
        num_puzzle_identifiers=puzzles,
        vocab_size=vocab,
        H_cycles=H,
        L_cycles=L,
        H_layers=0,
        L_layers=L_layers,
        hidden_size=hidden,
        expansion=4.0,
        num_heads=num_heads,
        pos_encodings="none" if variant == "mlp_t" else "rope",
        halt_max_steps=halt_max_steps,
        halt_exploration_prob=0.1,
        forward_dtype=dtype,
        mlp_t=variant == "mlp_t",
        puzzle_emb_len=puzzle_emb_len,
    )
