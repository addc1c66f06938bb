"""The run directory: every file a run writes, in one object (format: docs/run_directory.md).

`RunDir(path)` names each file of a run (local path or gs://) and reads/writes them through tf.io.gfile;
`sweep`, `analysis` and `launch.py` use the same JSON helpers below, so a run directory written on a TPU VM
reads the same on a laptop. A run directory describes itself: `config.json` holds the full config, so
tools can rebuild the model from `--checkpoint=RUN_DIR` alone (`RunDir.read_config`).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

CONFIG = "config.json"
SUMMARY = "run_summary.json"
EVAL_RESULTS = "eval_results.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


def write_json(path: str, obj) -> None:
    """Writes JSON atomically (temp file + rename) through tf.io.gfile."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str, default=None):
    """The JSON at `path`, or `default` when the file does not exist."""
    if not tf.io.gfile.exists(path):
        return default
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def append_jsonl(path: str, record: dict) -> None:
    """Appends one JSON line (gfile has no append mode on GCS: read-modify-write for gs://)."""
    line = json.dumps(record) + "\n"
    if "://" in path:
        old = tf.io.gfile.GFile(path).read() if tf.io.gfile.exists(path) else ""
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(old + line)
    else:
        with tf.io.gfile.GFile(path, "a") as f:
            f.write(line)


def read_jsonl(path: str) -> list[dict]:
    """Reads a JSON-lines file (skips a truncated last line of a killed run)."""
    out = []
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class RunDir:
    """Paths and small-file I/O of one run directory.

    Only the chief writes (`writer=True`); every process may read.
    """

    def __init__(self, path: str, writer: bool = True):
        self.path = path if "://" in path else os.path.abspath(os.path.expanduser(path))
        self.writer = writer

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoints(self) -> str:
        return self.file(CHECKPOINTS)

    def submission(self, step: int) -> str:
        return self.file(f"submission_step{step}.json")

    def arc_votes(self, step: int) -> str:
        return self.file(os.path.join("arc_votes", f"step_{step}"))

    # -------------------------------------------------------------- config
    def write_config(self, config) -> None:
        if self.writer:
            tf.io.gfile.makedirs(self.path)
            with tf.io.gfile.GFile(self.file(CONFIG), "w") as f:
                f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    def read_config(self):
        """The run's config as a ConfigDict (raises FileNotFoundError naming the file)."""
        import ml_collections

        data = read_json(self.file(CONFIG))
        if data is None:
            raise FileNotFoundError(
                f"{self.file(CONFIG)} not found: is {self.path} a run directory?"
            )
        return ml_collections.ConfigDict(data)

    # -------------------------------------------------------------- run summary
    def summary(self) -> dict:
        return read_json(self.file(SUMMARY), {}) or {}

    def update_summary(self, **fields) -> dict:
        """Merges `fields` into run_summary.json (chief only) and returns the new summary."""
        data = {**self.summary(), **fields}
        if self.writer:
            write_json(self.file(SUMMARY), data)
        return data

    # -------------------------------------------------------------- evaluations
    def eval_results(self) -> dict:
        return read_json(self.file(EVAL_RESULTS), {"latest": {}, "history": []})

    def add_eval(self, entry: dict, tag: str = "") -> None:
        """Appends an evaluation to eval_results.json (`tag`: kept apart, e.g. "average")."""
        results = self.eval_results()
        if tag:
            results[tag] = entry
        else:
            results["history"].append(entry)
            results["latest"] = entry
        if self.writer:
            write_json(self.file(EVAL_RESULTS), results)

    def evaluated_steps(self) -> set[int]:
        return {int(h.get("step", -1)) for h in self.eval_results()["history"]}
