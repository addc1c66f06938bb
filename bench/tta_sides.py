"""The two sides of bench/time_to_accuracy.py as subprocesses, the polling loop and the summary.

Each side is one process started by this module; its evaluations are turned into records
{"side", "step", "wall_s", "train_s", "exact", "cell"} where wall_s is the evaluation's time.time() minus
the time the process was started and train_s subtracts the seconds spent in evaluations so far. Only
processes started here are ever stopped (by their Popen handle).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import common

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "tta_reference_driver.py")
# One compute thread per side when pinned: oneDNN/OpenMP, MKL, TF's two pools, torch (through OMP).
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def train_line(side: str, step: int, cell: float, lm_loss: float) -> dict:
    """A progress record of training (not an evaluation): the training cell accuracy and lm loss."""
    return {
        "side": side,
        "train_step": int(step),
        "train_cell": round(cell, 4),
        "lm_loss": round(lm_loss, 4),
    }


class _Side:
    """A subprocess plus the bookkeeping that turns its evaluations into records."""

    side = ""

    def __init__(self, cmd: list[str], cores: str, log_path: str):
        self.cmd = (["taskset", "-c", cores] if cores else []) + cmd
        self.env = dict(os.environ, **(ONE_THREAD_ENV if cores else {}))
        self.log_path = log_path
        self.records: list[dict] = []
        self.proc = None
        self.t0 = 0.0
        self._eval_s = 0.0
        self._seen: set[int] = set()

    def start(self, **popen) -> None:
        shown = " ".join(a if len(a) < 120 else a[:60] + "..." for a in self.cmd)
        common.log(f"{self.side}: {shown} (log {self.log_path})")
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in finish)
        self.t0 = time.time()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stderr=self._log, **popen)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _record(self, step: int, t: float, exact: float, cell: float, eval_s: float) -> dict | None:
        if step in self._seen:  # a final evaluation at a step already evaluated
            return None
        self._seen.add(step)
        self._eval_s += eval_s
        wall = t - self.t0
        rec = {
            "side": self.side,
            "step": step,
            "wall_s": round(wall, 1),
            "train_s": round(wall - self._eval_s, 1),
            "exact": round(exact, 4),
            "cell": round(cell, 4),
        }
        self.records.append(rec)
        return rec

    def stop(self) -> None:
        """Ends this side's process (SIGTERM, then SIGKILL after 60 s)."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def finish(self) -> None:
        self.stop()
        self._log.close()
        if self.proc.returncode not in (0, -15):
            with open(self.log_path) as f:
                tail = f.read()[-3000:]
            common.log(f"{self.side} exited with {self.proc.returncode}; log tail:\n{tail}")


class OursRun(_Side):
    """`launch.py --config=configs/quickstart.py` in a fresh run directory; evaluations from metrics.jsonl."""

    side = "ours"

    def __init__(self, overrides: dict, run_dir: str, cores: str = ""):
        cmd = [
            sys.executable,
            os.path.join(common.REPO, "launch.py"),
            f"--config={os.path.join(common.REPO, 'configs', 'quickstart.py')}",
            f"--workdir={run_dir}",
        ] + [f"--config.{k}={v}" for k, v in overrides.items()]
        super().__init__(cmd, cores, run_dir + ".log")
        self.run_dir = run_dir
        self._lines = 0

    def start(self) -> None:
        super().start(cwd=common.REPO, stdout=subprocess.DEVNULL)

    def poll(self) -> list[dict]:
        """New evaluations in the run's metrics.jsonl (rows of split "eval"). The run directory is local
        (the parent loads no TensorFlow, so no tf.io.gfile here)."""
        path = os.path.join(self.run_dir, "metrics.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lines = f.read().splitlines()
        complete = lines if not lines or lines[-1].endswith("}") else lines[:-1]
        out = []
        for line in complete[self._lines :]:
            row = json.loads(line)
            if row.get("split") == "train":
                common.print_json(
                    train_line(self.side, row["step"], row["accuracy"], row["lm_loss"])
                )
            elif row.get("split") == "eval":
                out.append(
                    self._record(
                        int(row["step"]),
                        float(row["time"]),
                        float(row["exact_accuracy"]),
                        float(row["accuracy"]),
                        float(row.get("eval_seconds", 0.0)),
                    )
                )
        self._lines = len(complete)
        return [r for r in out if r]


class ReferenceRun(_Side):
    """tta_reference_driver.py under the torch python; its JSON lines arrive through a reader thread."""

    side = "reference"

    def __init__(self, torch_python: str, cfg: dict, log_path: str, cores: str = ""):
        cfg = dict(cfg, threads=1 if cores else 0)
        super().__init__([torch_python, DRIVER, json.dumps(cfg)], cores, log_path)
        self._queue: queue.Queue = queue.Queue()
        self.recipe: dict = {}

    def start(self) -> None:
        super().start(stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._queue.put(json.loads(line))

    def poll(self) -> list[dict]:
        out = []
        while not self._queue.empty():
            msg = self._queue.get()
            if msg.get("event") == "train":
                common.print_json(
                    train_line(self.side, msg["step"], msg["accuracy"], msg["lm_loss"])
                )
            elif msg.get("event") == "recipe":
                self.recipe = msg
                common.print_json({"reference_instantiated": msg})
            elif msg.get("event") == "eval":
                out.append(
                    self._record(
                        msg["step"],
                        msg["time"],
                        msg["exact_accuracy"],
                        msg["accuracy"],
                        msg["eval_seconds"],
                    )
                )
        return [r for r in out if r]


def _watch(active: list, stop_at: float | None, max_s: float | None) -> None:
    """Polls the started sides until all have exited, printing records; stops a side at the target or
    at its time limit."""
    while active:
        time.sleep(2.0)
        for r in list(active):
            alive = r.running()
            time.sleep(0.5 if not alive else 0.0)  # let the reader thread drain the last lines
            for rec in r.poll():
                common.print_json(rec)
                if stop_at is not None and rec["exact"] >= stop_at:
                    common.log(f"{r.side} reached {stop_at} at step {rec['step']}; stopping it")
                    r.stop()
            if max_s and time.time() - r.t0 > max_s:
                common.log(f"{r.side}: time limit reached; stopping it")
                r.stop()
            if not alive or not r.running():
                r.finish()
                active.remove(r)


def run_all(runs: list, concurrent: bool, stop_at: float | None, max_s: float | None) -> None:
    """Runs the sides at once (`concurrent`) or one after the other."""
    groups = [runs] if concurrent else [[r] for r in runs]
    for group in groups:
        for r in group:
            r.start()
        _watch(list(group), stop_at, max_s)


def summary(runs: list, target: float) -> dict:
    """Per side: the first evaluation at or above `target` (time, time without evaluations, step), the
    best exact accuracy and the last wall time; and ours / reference when both sides ran."""
    out: dict = {"target": target}
    for r in runs:
        hit = next((x for x in r.records if x["exact"] >= target), None)
        last = r.records[-1] if r.records else {}
        out[r.side] = {
            "time_to_target_s": hit["wall_s"] if hit else None,
            "train_time_to_target_s": hit["train_s"] if hit else None,
            "step_at_target": hit["step"] if hit else None,
            "best_exact": max((x["exact"] for x in r.records), default=None),
            "last_step": last.get("step"),
            "last_wall_s": last.get("wall_s"),
            "returncode": r.proc.returncode if r.proc else None,
        }
    ours, ref = out.get("ours"), out.get("reference")
    if ours and ref and ours["time_to_target_s"]:
        if ref["time_to_target_s"]:
            out["ratio"] = round(ours["time_to_target_s"] / ref["time_to_target_s"], 3)
            out["meets_two_thirds"] = out["ratio"] <= 2 / 3
        elif ref["last_wall_s"]:  # the reference had not reached the target when it stopped
            out["ratio_at_most"] = round(ours["time_to_target_s"] / ref["last_wall_s"], 3)
            out["meets_two_thirds"] = out["ratio_at_most"] <= 2 / 3
    return out
