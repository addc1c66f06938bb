"""Logged scalars of a run directory: TensorBoard event files, with metrics.jsonl as the fallback.

Every read goes through `tf.io.gfile` (paths are joined with posixpath, which keeps gs:// intact). A file
that is missing, unreadable or cut mid-write degrades to fewer rows plus a note in the caller's `notes`
list, never an exception: runs are read while they train, crash or get preempted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import posixpath

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow.python.util import deprecation

from trm_tf.workdir import read_json

log = logging.getLogger(__name__)
_MISSING = object()


# ------------------------------------------------------------------------------------------------
# Small gfile helpers.


def exists(path: str) -> bool:
    try:
        return tf.io.gfile.exists(path)
    except tf.errors.OpError:
        return False


def isdir(path: str) -> bool:
    try:
        return tf.io.gfile.isdir(path)
    except tf.errors.OpError:
        return False


def read_run_json(path: str, notes: list[str]):
    """`trm_tf.workdir.read_json` for a run that may be partial or damaged: None (with a note) when the file
    is missing or unreadable."""
    try:
        data = read_json(path, _MISSING)
    except (ValueError, tf.errors.OpError) as e:
        notes.append(f"unreadable {posixpath.basename(path)} ({type(e).__name__})")
        return None
    if data is _MISSING:
        notes.append(f"missing {posixpath.basename(path)}")
        return None
    return data


# ------------------------------------------------------------------------------------------------
# Scalars from event files and metrics.jsonl.


def _event_value(value) -> float | None:
    """Reads a scalar from a Summary.Value: TF1 `simple_value` or a TF2 scalar tensor."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        try:
            arr = tf.make_ndarray(value.tensor)
        except Exception:  # noqa: BLE001 - a non-numeric tensor summary is simply not a scalar.
            return None
        if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
            return float(arr.reshape(()))
    return None


class _Truncated(Exception):
    """An event file ends in a partial or corrupt record."""


def _iter_events(path: str):
    """Yields the Event protos of one file; raises _Truncated after the last complete record."""
    it = tf.compat.v1.train.summary_iterator(path)
    while True:
        try:
            event = next(it)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.OpError) as e:
            raise _Truncated(str(e)) from e
        yield event


def _silence_deprecation():
    silence = getattr(deprecation, "silence", None)
    return silence() if silence is not None else contextlib.nullcontext()


def _read_event_dir(logdir: str, notes: list[str]) -> pd.DataFrame:
    """Reads every scalar of every event file in `logdir` into a long frame (tag, step, value, time).

    Several event files (restarts) are concatenated in file-name order, which is creation-time order; for a
    repeated (tag, step) the value written last wins, as TensorBoard shows it.
    """
    rows: list[tuple[str, int, float, float, int]] = []
    try:
        files = sorted(tf.io.gfile.glob(posixpath.join(logdir, "events.out.tfevents.*")))
    except tf.errors.OpError:
        files = []
    for order, path in enumerate(files):
        try:
            # summary_iterator is ~1000x faster than a tf.data.TFRecordDataset per small file; silence()
            # hides the deprecation notice of the tf_record_iterator it wraps.
            with _silence_deprecation():
                for event in _iter_events(path):
                    if not event.HasField("summary"):
                        continue
                    for v in event.summary.value:
                        x = _event_value(v)
                        if x is not None:
                            rows.append((v.tag, int(event.step), x, float(event.wall_time), order))
        except _Truncated as e:
            # A file still being written (or cut by preemption) ends in a partial record: keep the
            # complete records before it.
            notes.append(f"truncated {posixpath.relpath(path, posixpath.dirname(logdir))}")
            log.debug("stopped reading %s: %s", path, e)
    if not rows:
        return pd.DataFrame(columns=["tag", "step", "value", "time"])
    df = pd.DataFrame(rows, columns=["tag", "step", "value", "time", "order"])
    df = df.sort_values(["order", "time"], kind="stable")
    df = df.drop_duplicates(["tag", "step"], keep="last").drop(columns="order")
    return df.sort_values(["tag", "step"], kind="stable").reset_index(drop=True)


def read_metrics_jsonl(workdir: str, notes: list[str]) -> pd.DataFrame:
    """Reads metrics.jsonl into a long frame (split, tag, step, value, time); bad lines are skipped."""
    path = posixpath.join(workdir, "metrics.jsonl")
    rows = []
    if not exists(path):
        return pd.DataFrame(columns=["split", "tag", "step", "value", "time"])
    bad = 0
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            text = f.read()
    except tf.errors.OpError:
        notes.append("unreadable metrics.jsonl")
        text = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            split, step = rec["split"], int(rec["step"])
        except (ValueError, KeyError, TypeError):
            bad += 1  # Usually the last line, cut mid-write.
            continue
        t = rec.get("time", math.nan)
        for k, v in rec.items():
            if k in ("split", "step", "time") or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                rows.append((split, k, step, float(v), float(t) if t is not None else math.nan))
    if bad:
        notes.append(f"{bad} bad line(s) in metrics.jsonl")
    df = pd.DataFrame(rows, columns=["split", "tag", "step", "value", "time"])
    return df.drop_duplicates(["split", "tag", "step"], keep="last").reset_index(drop=True)


def split_scalars(workdir: str, split: str, notes: list[str], jsonl=None) -> pd.DataFrame:
    """Long frame (tag, step, value, time) for one split: event files first, metrics.jsonl as fallback.

    `jsonl` is a zero-argument callable returning the parsed metrics.jsonl (lets callers share one read).
    """
    df = _read_event_dir(posixpath.join(workdir, split), notes)
    if df.empty:
        j = jsonl() if jsonl is not None else read_metrics_jsonl(workdir, notes)
        df = j[j["split"] == split].drop(columns="split").reset_index(drop=True)
    return df


def load_scalars(workdir: str, split: str, tag: str, warn: bool = True) -> pd.DataFrame:
    """One logged curve of one run.

    Reads `workdir/<split>/events.out.tfevents.*` and falls back to `workdir/metrics.jsonl` when the split
    has no event file. Missing tags give an empty frame (and a logged warning), never an exception.

    Args:
      workdir: Run directory, local or gs://.
      split: "train" or "eval".
      tag: Scalar tag, e.g. "exact_accuracy", "loss", "exact_accuracy/step_4".
      warn: Log a warning when the tag is missing or a file is truncated.

    Returns:
      DataFrame with integer column `step` and float column `value`, sorted by step, one row per step.
    """
    notes: list[str] = []
    df = split_scalars(workdir.rstrip("/"), split, notes)
    out = df[df["tag"] == tag][["step", "value"]].sort_values("step").reset_index(drop=True)
    out["step"] = out["step"].astype(np.int64)
    out["value"] = out["value"].astype(float)
    if warn:
        if out.empty:
            log.warning("%s: no %s/%s scalars", workdir, split, tag)
        for n in notes:
            log.warning("%s: %s", workdir, n)
    return out
