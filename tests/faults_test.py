"""Nothing lost, nothing silently wrong: checkpoints, workdirs and loads under faults and bad input."""

import json
import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import REPO, launch_cmd, weights_of
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import workdir as run_dir

pytestmark = pytest.mark.slow
ENV = dict(os.environ, PYTHONPATH=REPO)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    build_tiny_sudoku(d)
    return d


def _run(data_dir, workdir, *extra, check=True):
    out = subprocess.run(
        launch_cmd(data_dir, workdir, "--mode=train", *extra),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def _ckpts(workdir):
    return sorted(
        int(os.path.basename(p)[5:-6])
        for p in tf.io.gfile.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index"))
    )


def _train_steps(workdir):
    rows = run_dir.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    return [r["step"] for r in rows if r["split"] == "train"]


def _error_line(stderr: str) -> str:
    return [x for x in stderr.splitlines() if x.startswith("E")][-1]


KEEP = ("--config.train.max_checkpoints=10",)


def test_missing_and_corrupt_newest_checkpoints_walk_back_without_duplicates(data_dir, tmp_path):
    run = str(tmp_path / "run")
    _run(data_dir, run, "--config.train.total_steps=12", *KEEP)
    assert _ckpts(run) == [4, 8, 12]
    for f in tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-12.*")):
        tf.io.gfile.remove(f)  # what a user does after a crash during a save
    with open(os.path.join(run, "checkpoints", "ckpt-8.index"), "r+b") as f:
        f.write(b"\0garbage\0" * 8)  # and a corrupt one below it
    out = _run(data_dir, run, "--config.train.total_steps=16", *KEEP)
    assert "start at step 4" in out.stderr and "Skipping checkpoint" in out.stderr
    assert _ckpts(run) == [4, 8, 12, 16]
    assert os.path.exists(os.path.join(run, "checkpoints", "skipped", "ckpt-8.index"))
    assert _train_steps(run) == [4, 8, 12, 16]  # no step twice after the restart


def test_no_usable_checkpoint_refuses_to_start_over(data_dir, tmp_path):
    run = str(tmp_path / "run")
    _run(data_dir, run, "--config.train.total_steps=4")
    for f in tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-4.data*")):
        tf.io.gfile.remove(f)
    out = _run(data_dir, run, "--config.train.total_steps=8", check=False)
    assert out.returncode == 7, out.stderr[-2000:]
    assert "none of the 1 checkpoints" in _error_line(out.stderr)
    assert json.load(open(os.path.join(run, "run_summary.json")))["status"] == "failed"


def test_nan_is_never_saved_and_the_error_names_a_good_checkpoint(data_dir, tmp_path):
    run = str(tmp_path / "run")
    cadence = (
        "--config.train.log_every_steps=60",
        "--config.train.checkpoint_every_steps=4",
        *KEEP,
    )
    _run(data_dir, run, "--config.train.total_steps=8", *cadence)
    nan = ("--config.optim.lr=1e20", "--config.optim.weight_decay=1e20")
    out = _run(data_dir, run, "--config.train.total_steps=20", *cadence, *nan, check=False)
    assert out.returncode == 4, out.stderr[-2000:]
    assert _ckpts(run) == [4, 8]  # nothing non-finite was written
    assert "ckpt-8" in _error_line(out.stderr)
    assert "Non-finite" in json.load(open(os.path.join(run, "run_summary.json")))["error"]
    out = _run(data_dir, run, "--config.train.total_steps=12", *cadence)  # the good state resumes
    assert "start at step 8" in out.stderr


def test_eval_without_checkpoint_and_changed_model_are_refused(data_dir, tmp_path):
    out = subprocess.run(
        launch_cmd(data_dir, str(tmp_path / "typo"), "--mode=eval"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1 and "needs a checkpoint" in _error_line(out.stderr)
    run = str(tmp_path / "run")
    _run(data_dir, run, "--config.train.total_steps=4")
    before = open(os.path.join(run, "config.json")).read()
    out = _run(
        data_dir,
        run,
        "--config.train.total_steps=8",
        "--config.model.hidden_size=48",
        "--config.model.puzzle_emb_ndim=48",
        check=False,
    )
    assert out.returncode == 1
    line = _error_line(out.stderr)
    assert "model.hidden_size: 32 -> 48" in line and "optim." not in line
    assert open(os.path.join(run, "config.json")).read() == before  # not rewritten
    out = _run(data_dir, run, "--config.train.total_steps=8")  # longer training: allowed, logged
    assert "train.total_steps: 4 -> 8" in out.stderr


def test_a_second_run_on_a_busy_workdir_refuses_and_a_stale_lock_is_taken(data_dir, tmp_path):
    run = str(tmp_path / "run")
    os.makedirs(run)
    lock = run_dir.RunLock(run)
    lock.acquire()
    try:
        out = _run(data_dir, run, "--config.train.total_steps=4", check=False)
        assert out.returncode == 8 and f"pid {os.getpid()}" in _error_line(out.stderr)
    finally:
        lock.release()
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(os.path.join(run, run_dir.LOCK), "w") as f:
        json.dump({"host": os.uname().nodename, "pid": dead.pid, "started": 0, "heartbeat": 0}, f)
    _run(data_dir, run, "--config.train.total_steps=4")  # the dead owner's lock is taken over
    assert not os.path.exists(os.path.join(run, run_dir.LOCK))  # and released at the end


def test_killed_at_random_points_always_resumes_complete_and_exact(data_dir, tmp_path):
    """SIGKILL at random moments across several saves (some land inside a save), then a relaunch to the
    end: the weights equal an uninterrupted run's and no logged step appears twice."""
    args = ("--config.train.total_steps=24", "--config.train.steps_per_loop=2", *KEEP)
    args += ("--config.train.checkpoint_every_steps=2", "--config.train.log_every_steps=2")
    ref = str(tmp_path / "ref")
    _run(data_dir, ref, *args)
    run = str(tmp_path / "run")
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen(
            launch_cmd(data_dir, run, "--mode=train", *args),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start = max(_ckpts(run) or [0])
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any(s > start for s in _ckpts(run)):
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the next loops, saves included
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shutil.rmtree(os.path.join(run, "run.lock"), ignore_errors=True)
    _run(data_dir, run, *args)
    steps = _train_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 24
    a, b = weights_of(ref), weights_of(run)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("split", ["test", "train"])
def test_a_corrupt_shard_is_named_with_the_rebuild_command(tmp_path, split):
    """A truncated TFRecord stops the run in one line naming the file and the rebuild command: a test
    shard when the evaluation reads it; a train shard when it is read, i.e. when the decoded cache the
    build wrote is gone (training reads the cache, not the records, once it exists)."""
    import shutil

    from trm_tf import train
    from trm_tf.data import cache, datasets

    data_dir = str(tmp_path / "tfds")
    spec = build_tiny_sudoku(data_dir)
    base = tf.io.gfile.glob(os.path.join(data_dir, "sudoku_extreme", "pipeline_test", "*"))[0]
    shard = sorted(tf.io.gfile.glob(os.path.join(base, f"*{split}.tfrecord*")))[0]
    data = open(shard, "rb").read()
    open(shard, "wb").write(data[: len(data) // 2])  # a truncated record
    if split == "train":
        shutil.rmtree(os.path.join(base, "decoded_cache"))
        cache.forget()
    from tests.testing.launch import small_config

    c = small_config(data_dir, total_steps=4)
    c.eval.final_full = True  # the final evaluation reads every test shard
    with pytest.raises(datasets.DatasetCorruptError) as e:
        train.run(c, str(tmp_path / "run"), tf.distribute.get_strategy(), mode="train_and_eval")
    msg = str(e.value)
    assert shard in msg and "tfds build" in msg and "\n" not in msg
    assert spec.name in msg


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--config.model.hiden_size=3",), 'Did you mean "hidden_size"'),
        (("--config.model.hidden_size=abc",), "invalid literal for int()"),
        (("--config=CONFIGS/nope.py",), "No such file or directory"),
        (("--config=CONFIGS/quickstart.py:bogus",), "Unknown config argument bogus"),
    ],
)
def test_flag_and_config_mistakes_are_one_line(tmp_path, args, expected):
    import sys

    argv = [sys.executable, os.path.join(REPO, "launch.py"), f"--workdir={tmp_path / 'w'}"]
    argv += ["--config=" + os.path.join(REPO, "configs", "quickstart.py:runlocal")]
    argv += [a.replace("CONFIGS", os.path.join(REPO, "configs")) for a in args]
    out = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    lines = [
        x for x in out.stderr.splitlines() if x and not x.startswith(("WARNING: All", "I0000"))
    ]
    assert out.returncode == 1 and len(lines) == 1 and expected in lines[0], out.stderr[-2000:]


def test_offline_build_fails_in_seconds_naming_manual_dir(tmp_path, monkeypatch):
    import socket as socket_module

    from trm_tf.data import datasets

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket_module, "create_connection", unreachable)
    t0 = time.monotonic()
    with pytest.raises(datasets.DatasetMissingError) as e:
        datasets.build_dataset("sudoku_extreme/sub2_aug2", str(tmp_path / "tfds"))
    assert time.monotonic() - t0 < 30
    assert (
        "--manual_dir" in str(e.value) and "train.csv" in str(e.value) and "\n" not in str(e.value)
    )
    assert not tf.io.gfile.glob(
        str(tmp_path / "tfds" / "sudoku_extreme" / "sub2_aug2" / "incomplete*")
    )
