"""The run directory: what a resume drops, what a second run meets, what a changed config is told."""

import json
import os

import ml_collections
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from trm_tf import workdir
from trm_tf.summaries import MetricWriter


def _event_steps(path):
    steps = []
    for f in tf.io.gfile.glob(os.path.join(path, "train", "events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(f):
            ev = event_pb2.Event.FromString(raw.numpy())
            if ev.summary.value:
                steps.append(ev.step)
    return sorted(steps)


def test_truncate_after_drops_later_metrics_evals_and_events(tmp_path):
    run = workdir.RunDir(str(tmp_path))
    writer = MetricWriter(run.path)
    for step in (2, 4, 6, 8):
        writer.write("train", step, {"loss": 1.0 / step})
    writer.close()
    for step in (4, 8):
        run.add_eval({"step": step, "exact_accuracy": step / 10})
    assert _event_steps(run.path) == [2, 4, 6, 8]
    removed = run.truncate_after(4)
    assert removed == 2 + 1 + 2  # metrics rows, eval entry, events
    rows = workdir.read_jsonl(run.file(workdir.METRICS))
    assert [r["step"] for r in rows] == [2, 4]
    assert [h["step"] for h in run.eval_results()["history"]] == [4]
    assert run.eval_results()["latest"]["step"] == 4
    assert _event_steps(run.path) == [2, 4]
    assert run.truncate_after(4) == 0


def test_config_changes_split_state_from_schedule(tmp_path):
    old = {"model": {"hidden_size": 32, "L_layers": 2}, "train": {"total_steps": 8}, "seed": 0}
    new = {"model": {"hidden_size": 48, "L_layers": 2}, "train": {"total_steps": 16}, "seed": 0}
    state, other = workdir.config_changes(old, new)
    assert state == ["model.hidden_size: 32 -> 48"] and other == ["train.total_steps: 8 -> 16"]
    run = workdir.RunDir(str(tmp_path))
    run.write_config(ml_collections.ConfigDict(old))
    assert json.load(open(run.file(workdir.CONFIG)))["model"]["hidden_size"] == 32
    with pytest.raises(workdir.ConfigChangedError, match="model.hidden_size: 32 -> 48"):
        run.check_config(ml_collections.ConfigDict(new), resuming=True)
    assert run.check_config(ml_collections.ConfigDict(new), resuming=False) == []


def test_lock_refuses_a_live_owner_and_takes_a_stale_one(tmp_path):
    first = workdir.RunLock(str(tmp_path))
    first.acquire()
    with pytest.raises(workdir.WorkdirBusyError, match=f"pid {os.getpid()}"):
        workdir.RunLock(str(tmp_path)).acquire()
    first.release()
    assert not os.path.exists(os.path.join(tmp_path, workdir.LOCK))
    stale = {"host": "elsewhere", "pid": 1, "started": 0, "heartbeat": 0, "token": "x"}
    with open(os.path.join(tmp_path, workdir.LOCK), "w") as f:
        json.dump(stale, f)
    second = workdir.RunLock(str(tmp_path), stale_after_s=60)
    second.acquire()  # another host's lock without a heartbeat for an hour: taken over
    assert json.load(open(os.path.join(tmp_path, workdir.LOCK)))["pid"] == os.getpid()
    second.release()
