"""Goodput: the share of a run's wall time spent in compiled training steps, and where the rest went.

Every second of a training process, from its start (`launch.py` records it before importing TensorFlow, in
the environment variable PROCESS_START_ENV) to its last record, is charged to exactly one part:

* `startup`: process start to the first training loop (imports, cluster connection, dataset checks, model
  and optimizer build, restore, input pipeline), minus an evaluation run before the first loop;
* `compilation`: the first call of each compiled training loop (one per curriculum stage) beyond what its
  steps take at the steady rate: first call's time - steady time per step x its steps, where the steady
  rate is that function's later calls (else the run's other loops; with no other call at all, the whole
  first call counts as compilation). An estimate: tracing and XLA compilation are not timed apart from the
  first execution;
* `training`: the compiled training loops (each call through the fetch of its one report vector, which
  waits for the loop's last step), minus `compilation`;
* `evaluation`: evaluations (their own first-call compilation included), with their logs;
* `checkpointing`: checkpoint saves (the finiteness check of the weights included);
* `bookkeeping`: everything else between and after the loops (the log, the flush of the background writer
  before a checkpoint, the metric reset, the profiler window's start and stop);
* `waiting`: the time between the previous attempt's last record in run_summary.json and this process's
  start, when that attempt was preempted or killed (status `preempted` or `running`).

The seconds are accumulated across the run's launches in run_summary.json's `goodput` section.
"""

from __future__ import annotations

import contextlib
import os
import time

# Set by launch.py (time.time() before TensorFlow is imported); without it, this module's import time.
PROCESS_START_ENV = "TRM_TF_PROCESS_START"
_IMPORTED = time.time()

PARTS = (
    "startup",
    "compilation",
    "training",
    "evaluation",
    "checkpointing",
    "bookkeeping",
    "waiting",
)


def process_start() -> float:
    """The Unix time this process started (see PROCESS_START_ENV)."""
    try:
        return float(os.environ[PROCESS_START_ENV])
    except (KeyError, ValueError):
        return _IMPORTED


class Goodput:
    """Charges this process's wall time to the PARTS; `record()` adds the previous launches' seconds.

    `previous` is run_summary.json as this process found it (None or {} for a new run).
    """

    def __init__(self, previous: dict | None = None, start: float | None = None, clock=time.time):
        self.clock = clock
        self.start = process_start() if start is None else float(start)
        self._mark = self.start
        self.seconds = dict.fromkeys(PARTS, 0.0)
        previous = previous or {}
        before = (previous.get("goodput") or {}).get("seconds") or {}
        self.before = {p: float(before.get(p, 0.0)) for p in PARTS}
        last = (previous.get("goodput") or {}).get("last_record")
        if last is not None and previous.get("status") in ("preempted", "running"):
            self.seconds["waiting"] = max(0.0, self.start - float(last))
        self._looped = False
        self._first: dict = {}  # compiled function -> (seconds, steps) of its first call
        self._later: dict = {}  # compiled function -> [seconds, steps] of its later calls

    # ------------------------------------------------------------------ charging
    def charge(self, part: str) -> float:
        """Charges the time since the last charge to `part`; returns it."""
        now = self.clock()
        dt = max(0.0, now - self._mark)
        self.seconds[part] += dt
        self._mark = now
        return dt

    def gap(self) -> float:
        """Charges the time since the last charge to what lies between loops: start-up before the first
        training loop, bookkeeping after."""
        return self.charge("bookkeeping" if self._looped else "startup")

    @contextlib.contextmanager
    def phase(self, part: str):
        """Charges what came before to `gap()`, the body to `part`."""
        self.gap()
        try:
            yield
        finally:
            self.charge(part)

    def loop_begin(self) -> None:
        self.gap()
        self._looped = True

    def loop_end(self, function, steps: int) -> None:
        """Charges the loop since `loop_begin` (`steps` steps of the compiled `function`) to training."""
        dt = self.charge("training")
        if function not in self._first:
            self._first[function] = (dt, steps)
        else:
            acc = self._later.setdefault(function, [0.0, 0])
            acc[0] += dt
            acc[1] += steps

    # ------------------------------------------------------------------ reading
    def compilation(self) -> float:
        """The estimated compilation seconds of this process's first calls (see the module docstring)."""
        pooled_t = sum(t for t, _ in self._later.values())
        pooled_n = sum(n for _, n in self._later.values())
        total = 0.0
        for function, (t1, n1) in self._first.items():
            t, n = self._later.get(function, (pooled_t, pooled_n))
            steady = t / n if n else None
            total += t1 if steady is None else min(t1, max(0.0, t1 - steady * n1))
        return total

    def totals(self) -> dict[str, float]:
        """Seconds per part over every launch so far (this process up to its last charge)."""
        own = dict(self.seconds)
        comp = self.compilation()
        own["compilation"] += comp
        own["training"] -= comp
        return {p: self.before[p] + own[p] for p in PARTS}

    def record(self) -> dict:
        """run_summary.json's `goodput` section, up to now: seconds and shares of the wall time."""
        self.gap()
        seconds = self.totals()
        wall = sum(seconds.values())
        return {
            "wall_s": wall,
            "seconds": seconds,
            "shares": {p: (v / wall if wall > 0 else 0.0) for p, v in seconds.items()},
            "last_record": self._mark,
        }

    @staticmethod
    def scalars(record: dict) -> dict[str, float]:
        """TensorBoard scalars of a `record()`: goodput/<part>_share and goodput/wall_s."""
        out = {f"goodput/{p}_share": v for p, v in record["shares"].items()}
        out["goodput/wall_s"] = record["wall_s"]
        return out

    @staticmethod
    def line(record: dict) -> str:
        """One log line: the training share, then the other parts by size."""
        shares = record["shares"]
        rest = sorted((p for p in PARTS if p != "training"), key=lambda p: -shares[p])
        parts = ", ".join(f"{p} {100 * shares[p]:.1f}%" for p in rest if record["seconds"][p] > 0)
        return (
            f"goodput {100 * shares['training']:.1f}% of {record['wall_s']:.1f} s in training steps"
            + (f"; {parts}" if parts else "")
        )
