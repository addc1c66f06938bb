"""Two real worker processes under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1).

Checks, on the same code path as a multi-host pod: the result equals the single-process run on the same
global batch (host_sharding="stream"), only the chief writes summaries and logs, non-chief checkpoint
copies are cleaned up, and killing both workers and restarting them resumes from the shared checkpoint.
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import REPO, free_ports, launch_cmd, weights_of, worker_env
from tests.testing.tiny_datasets import build_tiny_sudoku

# End to end: two launch.py worker processes, killed and restarted (minutes on CPU).
pytestmark = pytest.mark.slow


def _start_workers(cmd, ports):
    procs = []
    for i in range(2):
        env = worker_env(ports, i)
        log = open(cmd[-1] + f".worker{i}.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd[:-1], env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait(procs, timeout=600):
    deadline = time.time() + timeout
    for p in procs:
        p.wait(timeout=max(1, deadline - time.time()))
    return [p.returncode for p in procs]


def test_two_workers_equal_single_process_and_resume_after_kill(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    args = (
        "--config.train.total_steps=12",
        "--config.train.eval_every_steps=100",
        "--config.data.host_sharding=stream",
        "--mode=train",
    )
    ref = str(tmp_path / "ref")
    subprocess.run(
        launch_cmd(data_dir, ref, *args),
        check=True,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        timeout=600,
    )

    run = str(tmp_path / "mw")
    os.makedirs(run)
    log_base = os.path.join(str(tmp_path), "mw")
    cmd = launch_cmd(data_dir, run, *args) + [log_base]
    procs = _start_workers(cmd, free_ports(2))
    deadline = time.time() + 400
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-*.index")):
            break
        time.sleep(0.2)
    assert all(p.poll() is None for p in procs), open(log_base + ".worker0.log").read()[-3000:]
    for p in procs:  # a real kill of both workers, mid-run
        p.send_signal(signal.SIGKILL)
        p.wait()
    step_at_kill = max(
        int(os.path.basename(c)[5:-6])
        for c in tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-*.index"))
    )
    assert step_at_kill < 12

    procs = _start_workers(cmd, free_ports(2))
    codes = _wait(procs)
    assert codes == [0, 0], open(log_base + ".worker1.log").read()[-3000:]

    a, b = weights_of(ref), weights_of(run)
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=2e-5, err_msg=k)
    log = open(log_base + ".worker0.log").read()
    assert "MultiWorkerMirroredStrategy" in log
    # Chief-only side effects: one train event writer, each logged step once, no leftover worker dirs.
    lines = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    steps = [r["step"] for r in lines if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 12
    assert not [d for d in os.listdir(run) if d.startswith("tmp_worker")]
    summary = json.load(open(os.path.join(run, "run_summary.json")))
    assert summary["status"] == "finished" and summary["num_replicas"] == 2
    # Each worker kept its own ACT carry file for the last checkpoint.
    carry = sorted(os.path.basename(p) for p in tf.io.gfile.glob(f"{run}/checkpoints/carry-12.*"))
    assert carry == ["carry-12.host0.npz", "carry-12.host1.npz"]
