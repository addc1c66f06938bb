"""The pod rehearsal: the program a TPU pod runs, executed end to end on CPU through launch.py.

A pod is one client process that calls the dataset function once per host, sees every replica's results,
and drives the hosts' devices. TF2 cannot emulate that on CPU directly (MirroredStrategy over remote
workers' devices is refused in eager mode; only TPUStrategy is single-client multi-host), so two
emulations cover it together:

* **one client, several input pipelines** (this file's first tests): MirroredStrategy over 4 logical CPUs
  with one input pipeline per replica (`runtime.input_pipelines=per_replica`): the dataset function is
  called 4 times with input_pipeline_id 0..3, as a pod's client calls it once per host; host features
  and per-host file shards must come out right in that shape (ARC's puzzle groups: its rehearsal run is
  counted by tests/pod_costs_test.py, which also checks that it scores as one pipeline);
* **several processes** (the last tests): MultiWorkerMirroredStrategy over two loopback workers, for what
  happens per host process: file shards, checkpoint and carry files, chief-only writes, the profiler
  services of every worker, SIGTERM and resume, a peer that never joins.

Everything runs in bfloat16 (the TPU dtype) with the default host sharding ("auto": files for Sudoku,
puzzle groups for ARC).
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import launch
from tests.testing.launch import REPO, free_ports, overrides, tiny_run_cmd, weights_of, worker_env
from tests.testing.tiny_datasets import build_tiny_sudoku
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku_builder

pytestmark = pytest.mark.slow

# Four test shards, so that each of four pipelines reads its own test files.
REHEARSAL_SUDOKU = sudoku_builder.SudokuConfig(
    name="rehearsal",
    description="Test-only generated config for the pod rehearsal.",
    source="generated",
    seed=11,
    num_train=40,
    num_test=64,
    num_aug=3,
    num_blanks=(4, 8),
    require="singles",
)
ONE_CLIENT_FOUR_PIPELINES = tuple(overrides(launch.ONE_CLIENT_FOUR_PIPELINES))
ENV = dict(os.environ, PYTHONPATH=REPO)


def _cmd(data_dir, workdir, dataset, *extra):
    """The tiny run in bfloat16 on `dataset`."""
    return tiny_run_cmd(
        data_dir, workdir, *overrides(launch.REHEARSAL_DTYPE), *extra, dataset=dataset
    )


def _steps(workdir, split):
    rows = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    return sorted({r["step"] for r in rows if r["split"] == split})


def _ckpt_steps(workdir):
    return sorted(
        int(os.path.basename(p)[5:-6])
        for p in tf.io.gfile.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index"))
    )


def _wait_for_checkpoint(proc, workdir, after, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(s > after for s in _ckpt_steps(workdir)):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    spec = build_tiny_sudoku(d, REHEARSAL_SUDOKU)
    assert len(spec.test_shard_lengths) >= 4
    return d


# 40 steps in loops of 5; logs and checkpoints every 10, evals every 20; a profiler window of 3 steps
# from step 7 and curriculum stages starting at steps 11 and 22 both end loops off the 5-step grid.
CADENCE = (
    "--config.train.total_steps=40",
    "--config.train.steps_per_loop=5",
    "--config.train.log_every_steps=10",
    "--config.train.checkpoint_every_steps=10",
    "--config.train.eval_every_steps=20",
    "--config.train.max_checkpoints=10",
    "--config.train.profile_start_step=7",
    "--config.train.profile_num_steps=3",
    "--config.curriculum.enabled=True",
    "--config.curriculum.start_H_cycles=1",
    "--config.curriculum.start_L_cycles=1",
    "--config.curriculum.num_stages=3",
    "--config.curriculum.ramp_fraction=0.55",
    "--config.eval.subset_size=32",
    "--mode=train_and_eval",
)


def test_one_client_four_pipelines_bf16_cadence_and_exact_resume(sudoku_dir, tmp_path):
    """Trains to the end; logs, checkpoints and evals at every cadence point across a profiler window
    and two curriculum stage changes; SIGTERM then SIGKILL then a relaunch end on the same weights."""
    data = "sudoku_extreme/rehearsal"
    ref = str(tmp_path / "ref")
    t0 = time.time()
    out = subprocess.run(
        _cmd(sudoku_dir, ref, data, *ONE_CLIENT_FOUR_PIPELINES, *CADENCE),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    process_wall = time.time() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    assert "MirroredStrategy over 4 logical CPUs" in out.stderr
    assert _ckpt_steps(ref) == [10, 20, 30, 40]
    assert _steps(ref, "train") == [10, 20, 30, 40]
    assert _steps(ref, "eval") == [20, 40]
    assert tf.io.gfile.glob(os.path.join(ref, "plugins", "profile", "*", "*.xplane.pb"))
    summary = json.load(open(os.path.join(ref, "run_summary.json")))
    assert summary["status"] == "finished" and summary["num_replicas"] == 4
    assert summary["forward_dtype"] == "bfloat16"
    # Goodput: the parts add up to the wall time the run recorded, which is the process's within a few
    # percent (what is left: interpreter start before launch.py's first line, and the exit).
    g = summary["goodput"]
    assert sum(g["seconds"].values()) == pytest.approx(g["wall_s"], rel=1e-6)
    assert 0.9 * process_wall <= g["wall_s"] <= process_wall
    assert g["seconds"]["waiting"] == 0.0 and g["seconds"]["training"] > 0
    assert all(
        g["seconds"][p] > 0 for p in ("startup", "compilation", "evaluation", "checkpointing")
    )
    assert "goodput" in out.stderr and "in training steps" in out.stderr

    run = str(tmp_path / "run")
    cmd = _cmd(sudoku_dir, run, data, *ONE_CLIENT_FOUR_PIPELINES, *CADENCE)
    # SIGTERM (a TPU VM preemption) after the first checkpoint: saves where it is, exits 0.
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert _wait_for_checkpoint(proc, run, 0), proc.communicate()[1].decode()[-3000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    stopped = json.load(open(os.path.join(run, "run_summary.json")))
    assert stopped["status"] == "preempted" and 10 <= stopped["step"] < 40
    # Relaunch, SIGKILL after its next checkpoint, relaunch again to the end.
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = _wait_for_checkpoint(proc, run, stopped["step"])
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert killed, err.decode()[-3000:]
    t0 = time.time()
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    last_wall = time.time() - t0
    assert out.returncode == 0, out.stderr[-4000:]
    assert (
        "fresh" not in out.stderr and "Carry not restored" not in out.stderr
    )  # bf16 carry restored
    # Whatever step the stops left it at, the cadence points after them were all reached.
    assert {20, 30, 40} <= set(_ckpt_steps(run))
    assert {20, 40} <= set(_steps(run, "eval"))
    # Across the three launches: the gaps between them are charged to waiting, the parts still add up.
    g = json.load(open(os.path.join(run, "run_summary.json")))["goodput"]
    assert sum(g["seconds"].values()) == pytest.approx(g["wall_s"], rel=1e-6)
    # The wall time accumulates: the first launch's, the gaps, and the last launch's own (measured here,
    # not against the reference run, whose wall time depends on what else the machine was running).
    assert g["seconds"]["waiting"] > 0
    assert g["wall_s"] >= stopped["goodput"]["wall_s"] + g["seconds"]["waiting"] + 0.8 * last_wall
    a, b = weights_of(ref), weights_of(run)
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)


def test_preflight_passes_on_the_rehearsal_and_fails_in_one_line(sudoku_dir, tmp_path):
    workdir = str(tmp_path / "pre")
    data = "sudoku_extreme/rehearsal"
    out = subprocess.run(
        _cmd(sudoku_dir, workdir, data, *ONE_CLIENT_FOUR_PIPELINES) + ["--preflight"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("preflight [")]
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    names = [x.split("]")[1].split()[0] for x in lines]
    assert names == ["versions", "hosts", "storage", "memory", "train", "eval", "checkpoint"]
    assert all(x.startswith("preflight [ok]") for x in lines), lines
    assert "1 host(s), 4 replicas" in lines[1]
    assert "bfloat16 carry" in lines[-1]
    assert not tf.io.gfile.exists(
        os.path.join(workdir, "checkpoints")
    )  # the run's own files untouched
    assert not tf.io.gfile.glob(os.path.join(workdir, "preflight", "*"))

    out = subprocess.run(
        _cmd(str(tmp_path / "nothing_here"), workdir, data, *ONE_CLIENT_FOUR_PIPELINES)
        + ["--preflight"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 6
    lines = [x for x in out.stdout.splitlines() if x.startswith("preflight [")]
    storage = next(x for x in lines if " storage " in x)
    assert storage.startswith("preflight [FAIL]") and "tfds build" in storage
    assert all("skipped" in x for x in lines if " train " in x or " checkpoint " in x)


def test_preflight_passes_on_the_default_strategy_of_one_cpu(sudoku_dir, tmp_path):
    """`launch.py --config=configs/quickstart.py:runlocal --workdir=W --preflight` on one CPU (the default
    strategy, which has no worker device list), on the rehearsal's tiny dataset instead of the quickstart's
    50,000 puzzles: every check passes."""
    workdir = str(tmp_path / "W")
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "launch.py"),
            "--config=" + os.path.join(REPO, "configs", "quickstart.py") + ":runlocal",
            f"--workdir={workdir}",
            "--preflight",
            f"--config.data.data_dir={sudoku_dir}",
            "--config.data.config=rehearsal",
            "--config.data.build_if_missing=False",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("preflight [")]
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert len(lines) == 7 and all(x.startswith("preflight [ok]") for x in lines), lines
    assert "1 host(s), 1 replicas on 1xCPU" in lines[1]
    assert "client and 1 host(s) read sudoku_extreme/rehearsal" in lines[2]
    assert "float32 carry" in lines[-1]
    assert not tf.io.gfile.glob(os.path.join(workdir, "preflight", "*"))


def _logs(log_base: str, workers: int = 2, lines: int = 60) -> str:
    """The last `lines` lines of every worker's log (for a failure message)."""
    out = []
    for i in range(workers):
        path = f"{log_base}.worker{i}.log"
        text = open(path).read().splitlines() if os.path.exists(path) else ["(no log)"]
        out.append(f"--- worker {i} ({path}) ---\n" + "\n".join(text[-lines:]))
    return "\n".join(out)


def _start_workers(cmd, ports, log_base, count=None):
    procs = []
    for i in range(count or len(ports)):
        env = worker_env(ports, i)
        log = open(f"{log_base}.worker{i}.log", "a")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


MULTI_PROCESS = (
    "--config.train.total_steps=16",
    "--config.train.steps_per_loop=4",
    "--config.train.log_every_steps=4",
    "--config.train.checkpoint_every_steps=4",
    "--config.train.max_checkpoints=10",
    "--config.train.profile_start_step=5",
    "--config.train.profile_num_steps=2",
    "--mode=train",
)


def test_two_processes_bf16_files_profiler_sigterm_and_resume(sudoku_dir, tmp_path):
    """Two loopback workers (one process per host) in bfloat16 with per-host files: every worker's profiler
    service is traced, SIGTERM saves and exits 0 on both, the relaunch ends on an uninterrupted run's
    weights."""
    data = "sudoku_extreme/rehearsal"
    ref = str(tmp_path / "ref")
    for attempt in (1, 2):
        port = free_ports(1)[0]
        extra = (*MULTI_PROCESS, f"--config.train.profiler_port={port}")
        procs = _start_workers(
            _cmd(sudoku_dir, ref, data, *extra), free_ports(2), str(tmp_path / "ref")
        )
        codes = [p.wait(timeout=900) for p in procs]
        if codes == [0, 0] or attempt == 2 or min(codes) >= 0:
            break
        # A worker killed by a signal while the profiler traced it (seen once in CI: SIGABRT in TF's C++
        # runtime right after the trace ended) is retried once, from scratch, with both logs kept.
        warnings.warn(
            f"pod rehearsal reference run: exit codes {codes}; retrying once\n{_logs(ref)}",
            stacklevel=1,
        )
        for path in (ref, f"{ref}.worker0.log", f"{ref}.worker1.log"):
            if os.path.exists(path):
                os.rename(path, f"{path}.attempt{attempt}")
    assert codes == [0, 0], _logs(ref)
    # The chief asked both workers' profiler services for the window (a pod's client asks every TPU
    # host's); a service that does not answer within the trace's duration is missing from it, which a
    # loaded 2-core machine sometimes shows, so at least one trace is required here.
    chief_log = open(str(tmp_path / "ref") + ".worker0.log").read()
    asked = next(x for x in chief_log.splitlines() if "Tracing the profiler services" in x)
    assert asked.count("grpc://127.0.0.1:") == 2, asked
    traces = tf.io.gfile.glob(os.path.join(ref, "plugins", "profile", "*", "*.xplane.pb"))
    assert 1 <= len(traces) <= 2, traces
    assert _ckpt_steps(ref) == [4, 8, 12, 16]  # the window (steps 5-7) did not move the cadence

    run = str(tmp_path / "run")
    cmd = _cmd(sudoku_dir, run, data, *MULTI_PROCESS)
    log_base = str(tmp_path / "run")
    procs = _start_workers(cmd, free_ports(2), log_base)
    assert _wait_for_checkpoint(procs[0], run, 0, timeout=600), _logs(log_base)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0], _logs(log_base)
    stopped = json.load(open(os.path.join(run, "run_summary.json")))
    assert stopped["status"] == "preempted" and stopped["step"] < 16
    step = stopped["step"]
    carries = sorted(
        os.path.basename(p) for p in tf.io.gfile.glob(f"{run}/checkpoints/carry-{step}.*")
    )
    assert carries == [f"carry-{step}.host0.npz", f"carry-{step}.host1.npz"]
    procs = _start_workers(cmd, free_ports(2), log_base)
    codes = [p.wait(timeout=900) for p in procs]
    assert codes == [0, 0], _logs(log_base)
    log = open(log_base + ".worker1.log").read()
    assert "Carry not restored" not in log and "fresh ACT carry" not in log
    a, b = weights_of(ref), weights_of(run)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    assert not [d for d in os.listdir(run) if d.startswith("tmp_worker")]


def test_worker_whose_peer_never_starts_stops_in_one_line(sudoku_dir, tmp_path):
    ports = free_ports(2)
    cmd = _cmd(
        sudoku_dir,
        str(tmp_path / "alone"),
        "sudoku_extreme/rehearsal",
        "--config.runtime.peer_timeout_s=5",
    )
    t0 = time.time()
    (proc,) = _start_workers(cmd, ports, str(tmp_path / "alone"), count=1)
    assert proc.wait(timeout=300) == 2
    assert time.time() - t0 < 120
    log = open(str(tmp_path / "alone") + ".worker0.log").read()
    line = next(x for x in log.splitlines() if "did not assemble" in x)
    assert f"worker 1 (127.0.0.1:{ports[1]})" in line
