r"""Counts (and optionally delays) the client's storage calls and device fetches of a run, phase by phase.

A diagnostic of the host side of a pod run, which CPU emulation hides: on a slice every `tf.io.gfile` call
on `gs://` is an HTTPS round trip (about 50 ms; a rename or copy is a copy plus a delete, about 100 ms) and
every `.numpy()` / `float()` / `int()` / `np.asarray()` of a tensor that lives on a replica is a blocking
gRPC copy from another host. This module wraps both in the running process and records every call:

* **storage calls**: every function of `tf.io.gfile` (and of `tensorflow.python.lib.io.file_io`, which
  TensorFlow's own Python code such as `tf.train.CheckpointManager` calls), each `GFile` opened for
  reading or writing (one round trip per file: on GCS a small file is read in one GET and written in one
  upload at close), and the same operations of `etils.epath`'s local-path backend, which TFDS uses for
  local paths and which becomes `tf.io.gfile` on `gs://`. A call made inside another counted call (e.g.
  `read_file_to_string` opening its file) counts once. `GFile.read` / `write` calls are recorded as `io`
  (buffered: not round trips). Not seen: TensorFlow ops that read files (`tf.io.read_file`, TFRecord
  readers, `SaveV2`: they run on the hosts) and C++ writers (TensorBoard event files).
* **device fetches**: every `EagerTensor._numpy`, the one function `.numpy()`, `float()`, `int()`,
  `bool()`, formatting and printing of an eager tensor go through in TF 2.20 (variables read through it
  too), and `np.asarray` / `np.asanyarray` / `np.array` / `np.stack` / `np.concatenate` of eager tensors
  (numpy reads a tensor's buffer in C, past `_numpy`): one fetch per tensor. A conversion numpy makes
  inside other C functions (e.g. `np.mean(tensor)`) is not seen.

Each record holds its kind, whether the main thread made it, its time and duration, the innermost frame
of the checkout's own code that made it (`path:line`, the report's `by_site`), and the main thread's
phase: `startup` (before the first training loop), `loop` (inside `Trainer.train_loop`), `between`
(between two loops, and after the last), `eval` (inside `Trainer.evaluate`) and `checkpoint` (inside
`CheckpointIO.save`); evaluation and checkpoint phases nest in the others. Compiled calls (top-level
`tf.function` calls on the main thread) are timed too: inside a loop they are the loop's compute, and the
main thread's time from the end of one loop's compiled call to the start of the next is that boundary's
host time; inside an evaluation the most-called function is the eval step, whose calls split the
evaluation into batches. (On CPU a compiled call returns when its work is done; on a TPU the dispatch
returns early and the next fetch waits for the device, so these times are the host's, not the chip's.)

Delays (`storage_ms`, `rename_ms`, `fetch_ms`) sleep inside the wrappers, in whatever thread calls, to
simulate an object store and remote fetches.

  python -m trm_tf.tools.host_costs --report=costs.json --storage_ms=50 --rename_ms=100 --fetch_ms=3 -- \
      --config=configs/quickstart.py:runlocal --workdir=/tmp/costs_run

runs launch.py's `main` in this process with the instrument installed and writes the JSON report
(`summarize`): counts per phase (main thread and other threads apart), per training-loop boundary and per
evaluation batch, the wall time of each phase and the compute time of loops and evaluation batches.
`--repo=CHECKOUT` runs another checkout's launch.py and package under this file's instrument (run it as a
script then: `python trm_tf/tools/host_costs.py --repo=... --report=... -- ...`), so two revisions are
measured alike; a `--workdir=ram://NAME` (TensorFlow's in-memory filesystem) makes the run take its
`gs://` code paths, and `--copy_workdir_to=DIR` keeps a copy of that run directory, which would end with
the process (copied after the report is made, so not counted). `bench/host_latency.py` runs the pod
rehearsal this way.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as launch.py, which this module may run
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402
from etils.epath import backend as epath_backend  # noqa: E402
from tensorflow.python.eager.polymorphic_function import polymorphic_function  # noqa: E402
from tensorflow.python.framework import ops  # noqa: E402
from tensorflow.python.lib.io import file_io  # noqa: E402
from tensorflow.python.platform import gfile as platform_gfile  # noqa: E402

# file_io function -> kind of storage call (the names of tf.io.gfile where it has one).
_FILE_IO_KINDS = {
    "file_exists": "exists",
    "file_exists_v2": "exists",
    "delete_file": "remove",
    "delete_file_v2": "remove",
    "read_file_to_string": "read_file",
    "write_string_to_file": "write_file",
    "get_matching_files": "glob",
    "get_matching_files_v2": "glob",
    "create_dir": "mkdir",
    "create_dir_v2": "mkdir",
    "recursive_create_dir": "makedirs",
    "recursive_create_dir_v2": "makedirs",
    "copy": "copy",
    "copy_v2": "copy",
    "rename": "rename",
    "rename_v2": "rename",
    "atomic_write_string_to_file": "atomic_write",
    "delete_recursively": "rmtree",
    "delete_recursively_v2": "rmtree",
    "is_directory": "isdir",
    "is_directory_v2": "isdir",
    "list_directory": "listdir",
    "list_directory_v2": "listdir",
    "walk": "walk",
    "walk_v2": "walk",
    "stat": "stat",
    "stat_v2": "stat",
    "filecmp": "filecmp",
    "file_crc32": "crc32",
}
# etils.epath's local backend: the same operations (TFDS on local paths; tf.io.gfile on gs://).
_EPATH_KINDS = (
    "open",
    "exists",
    "isdir",
    "listdir",
    "glob",
    "walk",
    "makedirs",
    "mkdir",
    "rmtree",
    "remove",
    "rename",
    "replace",
    "copy",
    "stat",
)
# numpy functions that convert eager tensors without `_numpy` (through the buffer protocol).
_NUMPY_CONVERSIONS = ("asarray", "asanyarray", "array", "stack", "concatenate")
# A rename or copy on an object store is a server-side copy plus (for a rename) a delete.
SLOW_KINDS = frozenset({"rename", "replace", "copy", "atomic_write"})
PHASES = ("startup", "loop", "between", "eval", "checkpoint")


@dataclasses.dataclass
class Call:
    """One recorded call. `category` is storage / fetch / io; `phase` the innermost phase of the main
    thread then and `outer` the outermost (startup / loop / between), `loop` how many loops had started,
    `eval_index` the evaluation (or -1)."""

    category: str
    kind: str
    via: str
    main: bool
    t: float
    dt: float
    phase: str
    outer: str
    loop: int
    eval_index: int
    site: str = ""


@dataclasses.dataclass
class Compiled:
    """One top-level tf.function call on the main thread."""

    fn: int
    t: float
    dt: float
    phase: str
    loop: int
    eval_index: int


class Recorder:
    """The instrument: `install()` wraps, `uninstall()` restores, `summarize()` reports."""

    def __init__(self, storage_ms: float = 0.0, rename_ms: float = 0.0, fetch_ms: float = 0.0):
        self.storage_s, self.rename_s, self.fetch_s = (
            storage_ms / 1e3,
            rename_ms / 1e3,
            fetch_ms / 1e3,
        )
        self.calls: list[Call] = []
        self.compiled: list[Compiled] = []
        self.stack = ["startup"]
        self.loops = 0  # training loops started so far
        self.evals = 0  # evaluations started so far
        self.loop_spans: list[tuple[float, float]] = []
        self.eval_spans: list[tuple[float, float, int]] = []  # (start, end, num_steps)
        self.boundary_flags: dict[int, set] = collections.defaultdict(set)
        self.t_start = self.t_end = 0.0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._main = threading.main_thread()
        self._undo: list[tuple[object, str, object]] = []

    # ------------------------------------------------------------------ recording
    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def _record(self, category: str, kind: str, via: str, t: float, dt: float) -> None:
        call = Call(
            category,
            kind,
            via,
            threading.current_thread() is self._main,
            t,
            dt,
            self.stack[-1],
            self.stack[0],
            self.loops,
            self.evals - 1 if "eval" in self.stack else -1,
            _site(),
        )
        with self._lock:
            self.calls.append(call)

    def _storage(self, fn, kind: str, via: str):
        delay = self.rename_s if kind in SLOW_KINDS else self.storage_s

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self._depth():
                return fn(*args, **kwargs)
            self._local.depth = 1
            t0 = time.perf_counter()
            try:
                if delay:
                    time.sleep(delay)
                return fn(*args, **kwargs)
            finally:
                self._local.depth = 0
                self._record("storage", kind, via, t0, time.perf_counter() - t0)

        wrapper._host_costs_original = fn  # noqa: SLF001
        return wrapper

    def _open_check(self, fn, attr: str):
        """FileIO._preread_check / _prewrite_check: a round trip when it opens the file (first use)."""

        @functools.wraps(fn)
        def wrapper(file_self, *args, **kwargs):
            if getattr(file_self, attr) is not None or self._depth():
                return fn(file_self, *args, **kwargs)
            self._local.depth = 1
            t0 = time.perf_counter()
            try:
                if self.storage_s:
                    time.sleep(self.storage_s)
                return fn(file_self, *args, **kwargs)
            finally:
                self._local.depth = 0
                self._record("storage", "open", "gfile", t0, time.perf_counter() - t0)

        return wrapper

    def _io(self, fn, kind: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if not self._depth():
                    self._record("io", kind, "gfile", t0, time.perf_counter() - t0)

        return wrapper

    def _fetch(self, fn):
        @functools.wraps(fn)
        def wrapper(tensor_self):
            if getattr(self._local, "in_numpy", False):  # counted by the numpy conversion
                return fn(tensor_self)
            t0 = time.perf_counter()
            try:
                if self.fetch_s:
                    time.sleep(self.fetch_s)
                return fn(tensor_self)
            finally:
                self._record("fetch", "numpy", "eager", t0, time.perf_counter() - t0)

        return wrapper

    def _numpy_conversion(self, fn):
        """np.asarray / np.array / np.stack ... of eager tensors: numpy reads their buffer in C, which
        `_numpy` does not see. One fetch per eager tensor converted (the first argument, or its items)."""

        @functools.wraps(fn)
        def wrapper(first, *args, **kwargs):
            if isinstance(first, ops.EagerTensor):
                tensors = 1
            elif isinstance(first, (list, tuple)):
                tensors = sum(isinstance(x, ops.EagerTensor) for x in first)
            else:
                tensors = 0
            if not tensors or getattr(self._local, "in_numpy", False):
                return fn(first, *args, **kwargs)
            self._local.in_numpy = True
            t0 = time.perf_counter()
            try:
                if self.fetch_s:
                    time.sleep(self.fetch_s * tensors)
                return fn(first, *args, **kwargs)
            finally:
                self._local.in_numpy = False
                dt = (time.perf_counter() - t0) / tensors
                for i in range(tensors):
                    self._record("fetch", "numpy", "np", t0 + i * dt, dt)

        return wrapper

    def _function_call(self, fn):
        @functools.wraps(fn)
        def wrapper(fn_self, *args, **kwargs):
            main = threading.current_thread() is self._main
            if not main or getattr(self._local, "in_function", False):
                return fn(fn_self, *args, **kwargs)
            self._local.in_function = True
            t0 = time.perf_counter()
            try:
                return fn(fn_self, *args, **kwargs)
            finally:
                self._local.in_function = False
                rec = Compiled(
                    id(fn_self),
                    t0,
                    time.perf_counter() - t0,
                    self.stack[-1],
                    self.loops,
                    self.evals - 1 if "eval" in self.stack else -1,
                )
                self.compiled.append(rec)

        return wrapper

    def _phase(self, fn, phase: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if threading.current_thread() is not self._main:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            if phase == "loop":
                self.loops += 1
                self.stack = ["loop"]
            else:
                if phase == "eval":
                    self.evals += 1
                if self.stack[0] == "between":
                    self.boundary_flags[self.loops].add(phase)
                self.stack.append(phase)
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                if phase == "loop":
                    self.loop_spans.append((t0, t1))
                    self.stack = ["between"]
                else:
                    self.stack.pop()
                    if phase == "eval":
                        steps = kwargs.get("num_steps", args[2] if len(args) > 2 else -1)
                        self.eval_spans.append((t0, t1, int(steps)))

        return wrapper

    # ------------------------------------------------------------------ install
    def _patch(self, owner, name: str, value) -> None:
        self._undo.append((owner, name, vars(owner)[name]))
        setattr(owner, name, value)

    def install(self) -> Recorder:
        """Wraps storage, fetches, compiled calls and the phase methods; idempotent per Recorder."""
        from trm_tf import checkpointing, trainer  # noqa: PLC0415  (Keras after the caller's set-up)

        self.t_start = time.perf_counter()
        wrapped = {}
        for name, kind in _FILE_IO_KINDS.items():
            fn = getattr(file_io, name, None)
            if fn is not None:
                wrapped[fn] = self._storage(fn, kind, "gfile")
        modules = {file_io, platform_gfile, tf.io.gfile}
        modules.update(m for m in (getattr(tf.compat.v1, "gfile", None),) if m is not None)
        for module in modules:
            for name, value in list(vars(module).items()):
                if callable(value) and value in wrapped:
                    self._patch(module, name, wrapped[value])
        self._patch(
            file_io.FileIO,
            "_preread_check",
            self._open_check(file_io.FileIO._preread_check, "_read_buf"),  # noqa: SLF001
        )
        self._patch(
            file_io.FileIO,
            "_prewrite_check",
            self._open_check(file_io.FileIO._prewrite_check, "_writable_file"),  # noqa: SLF001
        )
        for name, kind in (("read", "read"), ("readline", "read"), ("write", "write")):
            self._patch(file_io.FileIO, name, self._io(getattr(file_io.FileIO, name), kind))
        backend = type(epath_backend.os_backend)
        for name in _EPATH_KINDS:
            self._patch(backend, name, self._storage(getattr(backend, name), name, "epath"))
        base = ops._EagerTensorBase  # noqa: SLF001
        self._patch(base, "_numpy", self._fetch(base._numpy))  # noqa: SLF001
        for name in _NUMPY_CONVERSIONS:
            self._patch(np, name, self._numpy_conversion(getattr(np, name)))
        function = polymorphic_function.Function
        self._patch(function, "__call__", self._function_call(function.__call__))
        self._patch(trainer.Trainer, "train_loop", self._phase(trainer.Trainer.train_loop, "loop"))
        self._patch(trainer.Trainer, "evaluate", self._phase(trainer.Trainer.evaluate, "eval"))
        save = checkpointing.CheckpointIO.save
        self._patch(checkpointing.CheckpointIO, "save", self._phase(save, "checkpoint"))
        return self

    def uninstall(self) -> None:
        self.t_end = time.perf_counter()
        for owner, name, value in reversed(self._undo):
            setattr(owner, name, value)
        self._undo.clear()

    def __enter__(self) -> Recorder:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    # ------------------------------------------------------------------ report
    def summarize(self) -> dict:
        """The report: see the module docstring. Counts are calls; times are seconds."""
        end = self.t_end or time.perf_counter()
        return {
            "delays_ms": {
                "storage": self.storage_s * 1e3,
                "rename": self.rename_s * 1e3,
                "fetch": self.fetch_s * 1e3,
            },
            "wall_s": end - self.t_start,
            "phases": self._phases(end),
            "loops": self._loops(),
            "evals": self._evals(),
        }

    def _phases(self, end: float) -> dict:
        out = {}
        for phase in ("startup", "loop", "between", "eval", "checkpoint"):
            calls = [c for c in self.calls if c.phase == phase]
            out[phase] = _counts(calls)
        first = self.loop_spans[0][0] if self.loop_spans else end
        out["startup"]["wall_s"] = first - self.t_start
        out["loop"]["wall_s"] = sum(b - a for a, b in self.loop_spans)
        out["eval"]["wall_s"] = sum(b - a for a, b, _ in self.eval_spans)
        return out

    def _loops(self) -> dict:
        """Per loop boundary k (after loop k, before loop k+1; k = 1..loops-1): what the host did. A boundary
        is plain when no evaluation or checkpoint ran in it: the budget's boundaries."""
        compiled = collections.defaultdict(list)
        for c in self.compiled:
            if c.phase == "loop":
                compiled[c.loop].append(c)
        boundaries = []
        for k in range(1, len(self.loop_spans)):
            # From the end of loop k's compiled call to the start of loop k+1's: the loops' own Python
            # around their compiled calls counts for the boundary, as do other threads' calls meanwhile.
            end_k = max((c.t + c.dt for c in compiled[k]), default=self.loop_spans[k - 1][1])
            start_next = min((c.t for c in compiled[k + 1]), default=self.loop_spans[k][0])
            calls = [c for c in self.calls if end_k <= c.t < start_next]
            flags = sorted(self.boundary_flags.get(k, ()))
            row = {"after_loop": k, "plain": not flags, "with": flags, "host_s": start_next - end_k}
            row.update(_counts(calls))
            boundaries.append(row)
        plain = [b for b in boundaries if b["plain"]]
        compute = [sum(c.dt for c in compiled[k]) for k in sorted(compiled)]
        return {
            "count": len(self.loop_spans),
            "compute_s": compute,
            "boundaries": boundaries,
            "plain_boundaries": len(plain),
            "per_plain_boundary": _means(plain),
            "max_per_plain_boundary": _maxes(plain),
        }

    def _evals(self) -> dict:
        evals = []
        for e, (t0, t1, steps) in enumerate(self.eval_spans):
            mine = [c for c in self.compiled if c.eval_index == e]
            by_fn = collections.Counter(c.fn for c in mine)
            step_fn = by_fn.most_common(1)[0][0] if by_fn else None
            batches = [c for c in mine if c.fn == step_fn]
            calls = [c for c in self.calls if c.eval_index == e]
            edges = [b.t for b in batches] + [t1]
            segments = [
                [c for c in calls if edges[i] <= c.t < edges[i + 1] and not _inside(c, batches)]
                for i in range(len(batches))
            ]
            full = segments[:-1] if len(segments) > 1 else segments
            evals.append(
                {
                    "num_steps": steps,
                    "batches": len(batches),
                    "wall_s": t1 - t0,
                    "compute_s": sum(b.dt for b in batches),
                    "setup_s": (batches[0].t if batches else t1) - t0,
                    "other_compiled": len(mine) - len(batches),
                    "other_compiled_s": sum(c.dt for c in mine if c.fn != step_fn),
                    "batch_compute_s": [b.dt for b in batches],
                    "host_per_batch_s": _host_per_batch(batches, t1),
                    "setup": _counts([c for c in calls if c.t < edges[0]]),
                    "per_batch": _means([_counts(s) for s in full]),
                    "max_per_batch": _maxes([_counts(s) for s in full]),
                    "last_batch_and_results": _counts(segments[-1]) if segments else {},
                    "total": _counts(calls),
                }
            )
        return {"count": len(evals), "evaluations": evals}


# The checkout whose code runs (the one holding this file unless `--repo` names another).
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _site() -> str:
    """The innermost frame of this checkout's code (outside this module) that led to a call: path:line."""
    frame = sys._getframe(2)  # noqa: SLF001
    while frame is not None:
        name = frame.f_code.co_filename
        # A virtualenv inside the checkout (CI's .venv) holds TensorFlow's own frames: not this code.
        if name.startswith(_REPO) and name != __file__ and "site-packages" not in name:
            return f"{os.path.relpath(name, _REPO)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _inside(call: Call, compiled: list[Compiled]) -> bool:
    return any(c.t <= call.t < c.t + c.dt for c in compiled)


def _host_per_batch(batches: list[Compiled], t_end: float) -> list[float]:
    """Main-thread time after each eval-step call until the next one (the last: until the evaluation's end,
    which includes the evaluators' results)."""
    ends = [b.t + b.dt for b in batches]
    starts = [b.t for b in batches[1:]] + [t_end]
    return [s - e for e, s in zip(ends, starts, strict=True)]


def _counts(calls: list[Call]) -> dict:
    """Counts by category and thread, the main thread's seconds inside storage calls and fetches
    (delays included), and counts by kind and by call site (`category@path:line`)."""
    out = {
        "storage_main": 0,
        "storage_other": 0,
        "fetch_main": 0,
        "fetch_other": 0,
        "io_main": 0,
        "io_other": 0,
        "storage_s_main": 0.0,
        "fetch_s_main": 0.0,
    }
    kinds, sites = collections.Counter(), collections.Counter()
    for c in calls:
        out[f"{c.category}_{'main' if c.main else 'other'}"] += 1
        if c.category == "io":
            continue
        sites[f"{c.category}@{c.site}"] += 1
        kinds[f"{c.category}:{c.kind}{'' if c.main else '@other'}"] += 1
        if c.main:
            out[f"{c.category}_s_main"] += c.dt
    out["by_kind"] = dict(sorted(kinds.items()))
    out["by_site"] = dict(sites.most_common())
    return out


_NUMERIC = ("storage_main", "storage_other", "fetch_main", "fetch_other", "io_main", "io_other")


def _means(rows: list[dict]) -> dict:
    if not rows:
        return {}
    out = {k: statistics.fmean(r[k] for r in rows) for k in _NUMERIC}
    if "host_s" in rows[0]:
        out["host_s"] = statistics.fmean(r["host_s"] for r in rows)
    return out


def _maxes(rows: list[dict]) -> dict:
    return {k: max(r[k] for r in rows) for k in _NUMERIC} if rows else {}


# ---------------------------------------------------------------------- command line
def _launch_module():
    """launch.py of the checkout `_REPO` (it sits next to its `trm_tf/`), first on sys.path."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [_REPO] + [p for p in sys.path if os.path.abspath(p or ".") not in (here, _REPO)]
    import launch  # noqa: PLC0415

    return launch


def main(argv: list[str] | None = None) -> int:
    global _REPO  # noqa: PLW0603
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        sys.stderr.write(
            "host_costs: usage: python -m trm_tf.tools.host_costs [options] -- <launch.py flags>\n"
        )
        return 1
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m trm_tf.tools.host_costs")
    parser.add_argument("--report", required=True, help="Where to write the JSON report.")
    parser.add_argument("--storage_ms", type=float, default=0.0, help="Delay of each storage call.")
    parser.add_argument("--rename_ms", type=float, default=0.0, help="Delay of a rename / copy.")
    parser.add_argument("--fetch_ms", type=float, default=0.0, help="Delay of each device fetch.")
    parser.add_argument(
        "--repo",
        default=_REPO,
        help="The checkout whose launch.py and trm_tf run (another revision's, to compare it; this file "
        "can then be run as a script: python PATH/host_costs.py --repo=OTHER ...).",
    )
    parser.add_argument(
        "--copy_workdir_to",
        default="",
        help="Copy the run directory here after the run (e.g. a ram:// one, which ends with the process).",
    )
    args = parser.parse_args(argv[:cut])
    _REPO = os.path.abspath(args.repo)
    from absl import app  # noqa: PLC0415

    launch = _launch_module()
    recorder = Recorder(args.storage_ms, args.rename_ms, args.fetch_ms)
    code = 0
    with recorder:
        try:
            app.run(
                launch.main, argv=["launch.py", *argv[cut + 1 :]], flags_parser=launch._parse_flags
            )  # noqa: SLF001
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    report = recorder.summarize()
    report["exit_code"] = code
    with tf.io.gfile.GFile(args.report, "w") as f:
        json.dump(report, f, indent=1)
    if args.copy_workdir_to:
        workdir = [a.split("=", 1)[1] for a in argv[cut + 1 :] if a.startswith("--workdir=")][-1]
        copy_tree(workdir, args.copy_workdir_to)
    return code


def copy_tree(src: str, dst: str) -> None:
    """Copies directory `src` into `dst` (any tf.io.gfile filesystems, e.g. ram:// to a local path)."""
    src = src.rstrip("/")
    for root, _, files in tf.io.gfile.walk(src):
        target = os.path.join(dst, root[len(src) :].lstrip("/"))
        tf.io.gfile.makedirs(target)
        for name in files:
            try:
                tf.io.gfile.copy(f"{root}/{name}", os.path.join(target, name), overwrite=True)
            except tf.errors.NotFoundError:  # listed, then gone: a temporary file renamed meanwhile
                logging.warning("copy_tree: %s/%s vanished while copying", root, name)


if __name__ == "__main__":
    sys.exit(main())
