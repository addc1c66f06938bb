"""Goodput: the accounting of a run's wall time (unit), and a real launch.py run whose parts add up."""

import json
import os
import subprocess
import time

import pytest
import tensorflow as tf

from tests.testing.launch import REPO, launch_cmd
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf.goodput import PARTS, Goodput


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def test_every_second_is_charged_once_and_compilation_is_estimated():
    clock = Clock(100.0)
    g = Goodput(start=90.0, clock=clock)  # 10 s of start-up before the first loop
    with g.phase("evaluation"):  # an evaluation pending from a previous attempt, before any loop
        clock.t = 103.0
    clock.t = 104.0
    g.loop_begin()  # start-up: 90 -> 100 and 103 -> 104
    clock.t = 120.0
    g.loop_end("stage0", 10)  # first call: 16 s for 10 steps
    clock.t = 121.0
    g.loop_begin()  # 1 s of bookkeeping
    clock.t = 125.0
    g.loop_end("stage0", 10)  # steady: 0.4 s a step
    clock.t = 125.5
    g.loop_begin()
    clock.t = 129.5
    g.loop_end("stage0", 10)
    with g.phase("checkpointing"):
        clock.t = 131.5
    clock.t = 132.0
    r = g.record()
    s = r["seconds"]
    assert s["startup"] == pytest.approx(11.0)
    assert s["evaluation"] == pytest.approx(3.0)
    assert s["compilation"] == pytest.approx(16.0 - 0.4 * 10)
    assert s["training"] == pytest.approx(4.0 + 8.0)
    assert s["checkpointing"] == pytest.approx(2.0)
    assert s["bookkeeping"] == pytest.approx(1.0 + 0.5 + 0.5)
    assert s["waiting"] == 0.0
    assert r["wall_s"] == pytest.approx(42.0) == pytest.approx(sum(s.values()))
    assert sum(r["shares"].values()) == pytest.approx(1.0)
    assert r["shares"]["training"] == pytest.approx(12.0 / 42.0)
    assert r["last_record"] == 132.0
    assert Goodput.scalars(r)["goodput/training_share"] == r["shares"]["training"]
    assert Goodput.line(r) == (
        "goodput 28.6% of 42.0 s in training steps; compilation 28.6%, startup 26.2%, "
        "evaluation 7.1%, checkpointing 4.8%, bookkeeping 4.8%"
    )


def test_a_function_called_once_takes_the_steady_rate_of_the_others_or_counts_as_compilation():
    clock = Clock(0.0)
    g = Goodput(start=0.0, clock=clock)
    g.loop_begin()
    clock.t = 5.0
    g.loop_end("stage0", 4)  # only call of stage 0: no steady rate at all yet
    assert g.compilation() == pytest.approx(5.0)
    g.loop_begin()
    clock.t = 8.0
    g.loop_end("stage1", 4)  # first call of stage 1
    g.loop_begin()
    clock.t = 10.0
    g.loop_end("stage1", 4)  # steady: 0.5 s a step
    assert g.compilation() == pytest.approx((5.0 - 2.0) + (3.0 - 2.0))


def test_resumes_accumulate_and_waiting_counts_after_a_preemption_only():
    previous = {
        "status": "preempted",
        "goodput": {"seconds": dict.fromkeys(PARTS, 1.0), "last_record": 50.0},
    }
    clock = Clock(80.0)
    g = Goodput(previous, start=60.0, clock=clock)
    r = g.record()
    assert r["seconds"]["waiting"] == pytest.approx(1.0 + 10.0)
    assert r["seconds"]["startup"] == pytest.approx(1.0 + 20.0)
    assert r["wall_s"] == pytest.approx(len(PARTS) + 30.0)
    finished = Goodput({**previous, "status": "finished"}, start=60.0, clock=clock)
    assert finished.record()["seconds"]["waiting"] == pytest.approx(1.0)  # an eval later: no wait


@pytest.mark.slow  # launch.py subprocess
def test_a_real_run_reports_goodput_whose_parts_add_up_to_its_wall_time(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    workdir = str(tmp_path / "run")
    args = (
        "--config.train.total_steps=24",
        "--config.train.eval_every_steps=12",
        "--config.train.checkpoint_every_steps=12",
    )
    t0 = time.time()
    out = subprocess.run(
        launch_cmd(data_dir, workdir, *args),
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    wall = time.time() - t0
    g = json.load(open(os.path.join(workdir, "run_summary.json")))["goodput"]
    s = g["seconds"]
    assert set(s) == set(PARTS) and all(v >= 0 for v in s.values())
    assert sum(s.values()) == pytest.approx(g["wall_s"])
    for part in ("startup", "compilation", "training", "evaluation", "checkpointing"):
        assert s[part] > 0, part
    assert s["waiting"] == 0.0
    # From process start to the last record: the subprocess' wall time minus its exit.
    print(f"goodput wall {g['wall_s']:.2f} s of a {wall:.2f} s process; seconds {s}")
    assert 0.9 * wall < g["wall_s"] <= wall, (g["wall_s"], wall)
    assert "goodput" in out.stderr.splitlines()[-1] or any(
        "in training steps" in line for line in out.stderr.splitlines()[-5:]
    )
    # TensorBoard's scalars under train/.
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(os.path.join(workdir, "train"))
    acc.Reload()
    tags = acc.Tags()["tensors"] + acc.Tags()["scalars"]
    assert "goodput/training_share" in tags and "loss" in tags
    assert not tf.io.gfile.glob(os.path.join(workdir, "*.tmp"))
