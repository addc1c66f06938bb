"""Metric writers: TensorBoard scalars under workdir/{train,eval} plus a JSON-lines copy (chief only).

Writes go through a `trm_tf.background.BackgroundWriter` (during training: the run's writer thread, so no
storage call waits on the training path; without one, inline). The events are written without any
TensorFlow op: the Event protos are built in Python and appended with `tf.io.TFRecordWriter` (the C++
record writer through TF's file systems, gs:// included).

HParams: `write_hparams` records the run's hyperparameters (`hparams_of(config)`) as the HParams plugin's
session start in an event file at the workdir root, and `write_outcome` the final and best evaluation
metrics there as `final/<metric>` and `best/<metric>` scalars. TensorBoard pointed at a sweep's root then
lists every run in the HParams tab (one session per workdir, the train/ and eval/ scalars as its metrics). After `connect_to_cluster`, eager `tf.summary`
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
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
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


# Config sections whose fields are the run's hyperparameters (paths, runtime and logging knobs are not).
HPARAM_SECTIONS = ("model", "act", "optim", "train", "data", "eval", "curriculum")
_NOT_HPARAMS = (
    "data.data_dir",
    "data.manual_dir",
    "data.prefetch",
    "data.build_if_missing",
    "data.host_sharding",
)
_NOT_HPARAM_PREFIXES = ("train.log_", "train.checkpoint_", "train.profile", "train.max_checkpoints")


def is_hparam(key: str) -> bool:
    """Whether a flattened config key (e.g. "optim.ema") is a hyperparameter: a field of the
    model/act/optim/train/data/eval/curriculum sections that changes what is trained or measured, not a
    path, a logging or checkpoint cadence, or a runtime setting. The HParams tab shows these, and runs
    that agree on all of them but `seed` are seeds of one arm (`trm_tf.analysis.seeds`)."""
    return (
        key.split(".", 1)[0] in HPARAM_SECTIONS
        and key not in _NOT_HPARAMS
        and not key.startswith(_NOT_HPARAM_PREFIXES)
    )


def hparams_of(config) -> dict[str, bool | int | float | str]:
    """The run's hyperparameters for the HParams tab: `seed`, `experiment_id` and the leaves of the
    model/act/optim/train/data/eval/curriculum sections (paths and logging knobs left out); None and
    sequences as text."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    out: dict = {"seed": int(tree.get("seed", 0)), "experiment_id": str(tree.get("experiment_id"))}

    def walk(node, prefix):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, key + ".")
            elif not is_hparam(key):
                continue
            elif isinstance(v, (bool, int, float, str)):
                out[key] = v
            else:
                out[key] = "none" if v is None else str(list(v) if isinstance(v, tuple) else v)

    for section in HPARAM_SECTIONS:
        if isinstance(tree.get(section), dict):
            walk(tree[section], section + ".")
    return out


def outcome_scalars(results: dict) -> dict[str, float]:
    """`final/<m>` (the last full evaluation, else the last one) and `best/<m>` (the highest value over
    every evaluation, for accuracy-like metrics) of eval_results.json's top-level metrics."""
    history = [h for h in results.get("history", []) if isinstance(h, dict)]
    if not history:
        return {}
    full = [h for h in history if h.get("full")]
    final = full[-1] if full else history[-1]

    def numeric(h):
        return {
            k: float(v)
            for k, v in h.items()
            if "/" not in k
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and k not in ("step", "full", "num_examples", "time")
        }

    out = {f"final/{k}": v for k, v in numeric(final).items()}
    for k in numeric(final):
        if "accuracy" in k or "pass@" in k:
            out[f"best/{k}"] = max(numeric(h).get(k, float("-inf")) for h in history)
    return out


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

    def write_hparams(self, hparams: dict, trial_id: str, start_time_s: float) -> None:
        """Queues the HParams session start of this run (in the workdir root's event file)."""
        if not self.enabled:
            return
        proto = hparams_summary.hparams_pb(hparams, trial_id=trial_id, start_time_secs=start_time_s)
        summary = summary_pb2.Summary.FromString(proto.SerializeToString())
        self.background.submit(lambda: self._write_summary("", 0, time.time(), summary))

    def write_outcome(self, step: int, results: dict) -> None:
        """Queues the final/best metrics (`outcome_scalars`) as HParams metrics at `step`."""
        scalars = outcome_scalars(results)
        if self.enabled and scalars:
            summary = summary_pb2.Summary(value=[_scalar_value(k, v) for k, v in scalars.items()])
            self.background.submit(lambda: self._write_summary("", int(step), time.time(), summary))

    def _write_summary(self, split: str, step: int, now: float, summary) -> None:
        w = self._event_writer(split)
        w.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
        w.flush()

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
        summary = summary_pb2.Summary(value=[_scalar_value(k, v) for k, v in scalars.items()])
        self._write_summary(split, step, now, summary)
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
