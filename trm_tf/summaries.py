"""Metric writers: TensorBoard scalars under workdir/{train,eval} plus a JSON-lines copy (chief only)."""

from __future__ import annotations

import os
import time

import tensorflow as tf

from trm_tf.workdir import METRICS, append_jsonl, read_json, read_jsonl, write_json


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
        append_jsonl(os.path.join(self.workdir, METRICS), record)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()


# The run directory's JSON helpers live in trm_tf.workdir; kept here under their old names.
__all__ = ["MetricWriter", "append_jsonl", "read_json", "read_jsonl", "write_json"]
