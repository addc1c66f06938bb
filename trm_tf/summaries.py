"""Metric writers: TensorBoard scalars under workdir/{train,eval} plus a JSON-lines copy (chief only)."""

from __future__ import annotations

import json
import os
import time

import tensorflow as tf


class MetricWriter:
    """Writes scalars to TensorBoard and `metrics.jsonl`; a no-op on non-chief workers."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.workdir = workdir
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        if enabled:
            tf.io.gfile.makedirs(workdir)

    def _writer(self, split: str) -> tf.summary.SummaryWriter:
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self.workdir, split))
        return self._writers[split]

    def write(self, split: str, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        with self._writer(split).as_default():
            for k, v in scalars.items():
                tf.summary.scalar(k, v, step=step)
        self._writer(split).flush()
        record = {"split": split, "step": int(step), "time": time.time(), **scalars}
        append_jsonl(os.path.join(self.workdir, "metrics.jsonl"), record)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()


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


def write_json(path: str, obj) -> None:
    """Writes JSON atomically (temp file + rename) through tf.io.gfile."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str, default=None):
    if not tf.io.gfile.exists(path):
        return default
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


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
