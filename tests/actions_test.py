"""Between two compiled training loops: one device->host fetch, no storage call on the main thread."""

import threading

import pytest
import tensorflow as tf
from tensorflow.python.framework import ops

from tests.testing.launch import small_config
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import actions, train
from trm_tf.trainer import Trainer
from trm_tf.workdir import METRICS, read_jsonl


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    build_tiny_sudoku(d)
    return d


def _config(data_dir):
    # 6 loops of 2 steps, a log every 2nd loop, a checkpoint only at the end, no evaluation (mode=train).
    return small_config(
        data_dir,
        total_steps=12,
        steps_per_loop=2,
        log_every_steps=4,
        checkpoint_every_steps=1000,
        eval_every_steps=1000,
    )


def test_one_fetch_between_two_training_loops(data_dir, tmp_path, monkeypatch):
    fetches = [0]
    real_numpy = ops._EagerTensorBase._numpy

    def counting_numpy(self):
        if threading.current_thread() is threading.main_thread():
            fetches[0] += 1
        return real_numpy(self)

    monkeypatch.setattr(ops._EagerTensorBase, "_numpy", counting_numpy)
    at_loop, in_loop = [], []
    real_loop = Trainer.train_loop

    def recording_loop(self, iterator, n):
        at_loop.append(fetches[0])
        real_loop(self, iterator, n)
        in_loop.append(fetches[0] - at_loop[-1])

    monkeypatch.setattr(Trainer, "train_loop", recording_loop)
    train.run(_config(data_dir), str(tmp_path / "run"), tf.distribute.get_strategy(), mode="train")
    assert len(at_loop) == 6
    # The first loop reads the restored step once; no loop fetches anything after that.
    assert in_loop == [1, 0, 0, 0, 0, 0]
    between = [b - a - n for a, b, n in zip(at_loop, at_loop[1:], in_loop)]
    assert between == [1] * 5, between  # the loop's report, logged or not
    rows = [r for r in read_jsonl(str(tmp_path / "run" / METRICS)) if r["split"] == "train"]
    assert [r["step"] for r in rows] == [4, 8, 12]


def test_no_storage_call_on_the_main_thread_between_loops(data_dir, tmp_path, monkeypatch):
    calls = []  # (function, in an action or loop)
    inside = threading.local()

    def wrap(name, fn):
        def wrapper(*args, **kwargs):
            if threading.current_thread() is threading.main_thread() and getattr(
                inside, "on", False
            ):
                calls.append(name)
            return fn(*args, **kwargs)

        return wrapper

    for name in ("GFile", "exists", "rename", "makedirs", "glob", "remove", "listdir", "isdir"):
        monkeypatch.setattr(tf.io.gfile, name, wrap(name, getattr(tf.io.gfile, name)))
    monkeypatch.setattr(tf.io, "TFRecordWriter", wrap("TFRecordWriter", tf.io.TFRecordWriter))

    def flagged(cls):
        real = cls.__call__

        def call(self, end):
            inside.on = True
            try:
                real(self, end)
            finally:
                inside.on = False

        monkeypatch.setattr(cls, "__call__", call)

    for cls in (actions.NaNGuard, actions.LogMetrics, actions.PeriodicEval):
        flagged(cls)
    logged = []
    real_log = actions.LogMetrics.__call__

    def log_call(self, end):
        before = len(calls)
        real_log(self, end)
        logged.append(len(calls) - before)

    monkeypatch.setattr(actions.LogMetrics, "__call__", log_call)
    workdir = tmp_path / "run"
    train.run(_config(data_dir), str(workdir), tf.distribute.get_strategy(), mode="train")
    assert len(logged) == 6 and calls == []
    # The writes did happen (from the writer thread): every log line, the summary, the events.
    assert [r["step"] for r in read_jsonl(str(workdir / METRICS))] == [4, 8, 12]
    assert tf.io.gfile.glob(str(workdir / "train" / "events.out.tfevents.*"))
