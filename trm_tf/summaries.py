"""Metric writers: TensorBoard scalars under workdir/{train,eval} plus a JSON-lines copy (chief only).

Writes go through a `trm_tf.background.BackgroundWriter` (during training: the run's writer thread, so no
storage call waits on the training path; without one, inline). The events are written without any
TensorFlow op: the Event protos are built in Python and appended with `tf.io.TFRecordWriter` (the C++
record writer through TF's file systems, gs:// included). After `connect_to_cluster`, eager `tf.summary`
ops would run on the default device, worker 0's TPU host, one remote op per scalar; this path never leaves
the client. TensorBoard reads them as `tf.summary.scalar` writes them (a float32 scalar tensor with the
scalars plugin's metadata).
"""

from __future__ import annotations

import json
import os
import socket
import time

import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tensorflow.core.util import event_pb2

from trm_tf.background import BackgroundWriter
from trm_tf.workdir import METRICS


def _scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
    """A scalar summary value as `tf.summary.scalar` writes it (TF2: tensor + scalars plugin)."""
    v = summary_pb2.Summary.Value(tag=tag)
    v.metadata.plugin_data.plugin_name = "scalars"
    v.tensor.CopyFrom(tf.make_tensor_proto(float(value), dtype=tf.float32))
    return v


class MetricWriter:
    """Writes scalars to TensorBoard and `metrics.jsonl`; a no-op on non-chief workers.

    The contents of a gs:// metrics.jsonl are kept in memory (read once, at the first write, after the
    resume truncation) and written whole at each write (GCS has no append); a local file is appended to.
    """

    def __init__(
        self, workdir: str, enabled: bool = True, background: BackgroundWriter | None = None
    ):
        self.enabled = enabled
        self.workdir = workdir
        self.background = background or BackgroundWriter(threaded=False)
        self._events: dict[str, tf.io.TFRecordWriter] = {}  # touched by the writer thread only
        self._jsonl_text: str | None = None  # gs:// metrics.jsonl, ditto
        if enabled:
            tf.io.gfile.makedirs(workdir)

    def write(self, split: str, step: int, metrics: dict[str, float], jsonl: bool = True) -> None:
        """Queues one record: every int/float of `metrics` as a scalar at `step` (and, with `jsonl`, as a
        line of metrics.jsonl; `jsonl=False` for TensorBoard-only scalars)."""
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        now = time.time()
        self.background.submit(lambda: self._write(split, int(step), now, scalars, jsonl))

    def _event_writer(self, split: str) -> tf.io.TFRecordWriter:
        if split not in self._events:
            logdir = os.path.join(self.workdir, split)
            tf.io.gfile.makedirs(logdir)
            name = (
                f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{len(self._events)}.v2"
            )
            w = tf.io.TFRecordWriter(os.path.join(logdir, name))
            w.write(
                event_pb2.Event(
                    wall_time=time.time(), file_version="brain.Event:2"
                ).SerializeToString()
            )
            self._events[split] = w
        return self._events[split]

    def _write(self, split: str, step: int, now: float, scalars: dict, jsonl: bool) -> None:
        w = self._event_writer(split)
        summary = summary_pb2.Summary(value=[_scalar_value(k, v) for k, v in scalars.items()])
        w.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
        w.flush()
        if jsonl:
            line = json.dumps({"split": split, "step": step, "time": now, **scalars}) + "\n"
            path = os.path.join(self.workdir, METRICS)
            if "://" in path:
                if self._jsonl_text is None:
                    exists = tf.io.gfile.exists(path)
                    self._jsonl_text = tf.io.gfile.GFile(path).read() if exists else ""
                self._jsonl_text += line
                with tf.io.gfile.GFile(path, "w") as f:
                    f.write(self._jsonl_text)
            else:
                with tf.io.gfile.GFile(path, "a") as f:
                    f.write(line)

    def flush(self) -> None:
        """Blocks until every queued record is written (re-raises a failed write)."""
        self.background.flush()

    def close(self) -> None:
        """Writes what is queued and closes the event files."""
        if self.enabled:
            self.background.submit(self._close_events)
        self.background.flush()

    def _close_events(self) -> None:
        for w in self._events.values():
            w.close()
        self._events = {}
