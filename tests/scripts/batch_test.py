"""Tests of the Cloud TPU operation scripts: build_data.sh, run_batch.sh, tensorboard.sh and capture_profile.sh, with a fake gcloud and gsutil.

No network and no real gcloud (see conftest.py).
"""

import json
import re
import shlex
import subprocess

from tests.testing.scripts import (
    batch_summary,
    commands,
    flag,
    run,
)


def test_build_data_commands_and_skip_when_built(base_env, tmp_path):
    res = run(
        "build_data.sh", "--data_dir=gs://bkt/tfds", "--dataset=sudoku_extreme/sub1000_aug1000",
        "--manual_dir=/data/raw", "--dry-run", env=base_env,
    )  # fmt: skip
    assert commands(res.stdout, "gsutil") == [
        ["gsutil", "-q", "ls", "gs://bkt/tfds/sudoku_extreme/sub1000_aug1000/*/dataset_info.json"]
    ]
    assert commands(res.stdout, "python3") == [
        ["python3", "-m", "trm_tf.data.prepare", "--dataset=sudoku_extreme/sub1000_aug1000",
         "--data_dir=gs://bkt/tfds", "--manual_dir=/data/raw"]
    ]  # fmt: skip
    res = run("build_data.sh", f"--data_dir={tmp_path}", "--dataset=maze_hard/default",
              "--tfds_cli", "--dry-run", env=base_env)  # fmt: skip
    assert commands(res.stdout, "tfds") == [
        ["tfds", "build", "tfds_builders/maze_hard", "--config=default", f"--data_dir={tmp_path}"]
    ]
    built = tmp_path / "maze_hard" / "default" / "1.0.0"
    built.mkdir(parents=True)
    (built / "dataset_info.json").write_text("{}")
    res = run("build_data.sh", f"--data_dir={tmp_path}", "--dataset=maze_hard/default",
              "--tfds_cli", "--dry-run", env=base_env)  # fmt: skip
    assert res.returncode == 0 and "already built" in res.stderr
    assert commands(res.stdout, "tfds") == []


def test_run_batch_skips_finished_and_launches_the_rest(base_env, tmp_path):
    (tmp_path / "e1_small").mkdir()
    (tmp_path / "e1_small" / "run_summary.json").write_text('{"step": 9, "status": "finished"}')
    (tmp_path / "e2_big").mkdir()
    (tmp_path / "e2_big" / "run_summary.json").write_text('{"status": "running"}')
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", f"--workdir_root={tmp_path}/",
        "--tpu_address=local", "configs/e1_small.py", "configs/e2_big.py",
        "configs/e3_new.py:arg=1", "--dry-run", "--", "--seed=3", env=base_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    ssh = commands(res.stdout)
    launches = [a for a in ssh if "launch.py" in flag(a, "--command")]
    assert len(launches) == 2 and len(ssh) == 4  # a launch and a poll per run
    first, second = (flag(a, "--command") for a in launches)
    assert f"--config=configs/e2_big.py --workdir={tmp_path}/e2_big" in first
    assert f"--config=configs/e3_new.py:arg=1 --workdir={tmp_path}/e3_new_arg_1" in second
    assert all("--tpu=local --seed=3" in c for c in (first, second))
    assert "e1_small: already finished" in res.stderr
    summary = res.stdout[res.stdout.index("=== run_batch summary") :].splitlines()
    assert summary[0] == "=== run_batch summary (3 experiments, 0 not finished)"
    assert [line.split()[:2] for line in summary[2:]] == [
        ["e1_small", "skipped"],
        ["e2_big", "dry-run"],  # nothing ran, so nothing is claimed to be ok
        ["e3_new_arg_1", "dry-run"],
    ]


def test_tensorboard_and_profile_capture(base_env):
    res = run("tensorboard.sh", "--logdir=gs://bkt/runs", "--port=6007", "--dry-run", env=base_env)
    assert commands(res.stdout, "tensorboard") == [
        ["tensorboard", "--logdir=gs://bkt/runs", "--host=127.0.0.1", "--port=6007"]
    ]
    # One host: the trainer itself serves the trace, reached through a tunnel; local logdir is fine.
    res = run(
        "capture_profile.sh", "--name=trm", "--zone=z", "--logdir=/tmp/prof", "--type=v4-8",
        "--port=9012", "--duration_ms=2000", "--dry-run", env=base_env,
    )  # fmt: skip
    (tunnel,) = commands(res.stdout)
    assert tunnel == [
        "gcloud", "compute", "tpus", "tpu-vm", "ssh", "trm", "--zone=z", "--worker=0", "--quiet",
        "--", "-N", "-L", "9012:localhost:9012",
    ]  # fmt: skip
    (trace,) = commands(res.stdout, "python3")
    assert "tf.profiler.experimental.client.trace" in trace[2]
    assert trace[3:] == ["grpc://localhost:9012", "/tmp/prof", "2000"]


def test_run_batch_tells_finished_preempted_and_failed_apart(fake_cloud):
    env, state = fake_cloud
    # Launch order: e1 (preempted: SIGTERM save, exit 0), e2, e3, then e1 again (re-queued).
    (state / "plan").write_text("preempted 0\n- 3\nrunning 0\nfinished 0\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--data_dir=gs://bkt/tfds", "--tpu_address=grpc://10.0.0.2:8470", "--poll_seconds=0",
        "configs/e1.py", "configs/e2.py", "configs/e3.py", env=env,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    header, rows = batch_summary(res.stdout)
    assert header == "=== run_batch summary (3 experiments, 2 not finished)"
    assert rows == [
        ("e1", "preempted (re-queued)"),
        ("e2", "FAILED (exit 3: dataset missing)"),
        ("e3", "FAILED (exit 0, status running)"),
        ("e1", "ok"),
    ]
    calls = (state / "calls.log").read_text().splitlines()
    launches = [c for c in calls if "launch.py" in c]
    assert [re.search(r"--workdir=(\S+)", c).group(1) for c in launches] == [
        "gs://bkt/runs/e1", "gs://bkt/runs/e2", "gs://bkt/runs/e3", "gs://bkt/runs/e1",
    ]  # fmt: skip
    # A re-run of the batch skips e1, which its summary now says is finished.
    (state / "plan").write_text("finished 0\nfinished 0\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--tpu_address=grpc://10.0.0.2:8470", "--poll_seconds=0", "configs/e1.py",
        "configs/e2.py", "configs/e3.py", env=dict(env, TRM_DATA_DIR="gs://bkt/tfds"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert batch_summary(res.stdout)[1] == [
        ("e1", "skipped (finished)"), ("e2", "ok"), ("e3", "ok"),
    ]  # fmt: skip


def test_run_batch_preempted_until_max_attempts_is_not_ok(fake_cloud, tmp_path):
    env, state = fake_cloud
    (state / "plan").write_text("preempted 0\npreempted 0\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", f"--workdir_root={tmp_path}/runs",
        "--tpu_address=local", "--poll_seconds=0", "--max_attempts=2", "configs/e1.py", env=env,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    header, rows = batch_summary(res.stdout)
    assert header == "=== run_batch summary (1 experiments, 1 not finished)"
    assert rows == [("e1", "preempted (re-queued)"), ("e1", "PREEMPTED (2/2 launches used)")]
    assert (state / "plan").read_text().strip() == ""  # exactly two launches


def test_wait_loops_are_bounded(fake_cloud):
    env, state = fake_cloud
    # launch_pod --wait on a run that never ends: exit 124 and a message, not an endless poll.
    (state / "plan").write_text("- running\n- running\n")
    res = run(
        "launch_pod.sh", "--name=trm", "--zone=z", "--config=configs/e1.py",
        "--workdir=gs://bkt/runs/e1", "--run=r1", "--tpu_address=local", "--wait",
        "--poll_seconds=0", "--max_wait=0s", env=env,
    )  # fmt: skip
    assert res.returncode == 124
    assert "run r1 has not ended after --max_wait=0s; stopped waiting" in res.stderr
    # run_batch stops there: the worker would refuse any further launch while r1 is active.
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--tpu_address=local", "--poll_seconds=0", "--max_wait=0", "configs/e1.py",
        "configs/e2.py", env=env,
    )  # fmt: skip
    assert res.returncode == 1
    assert batch_summary(res.stdout)[1] == [
        ("e1", "FAILED (exit 124: still running after --max_wait)"),
        ("e2", "not run (batch stopped)"),
    ]
    assert (state / "plan").read_text().strip() == ""  # e2 was never launched
    # create_tpu --wait on a queued resource that never becomes ACTIVE.
    res = run(
        "create_tpu.sh", "--name=q", "--zone=z", "--type=v4-8", "--queued", "--wait",
        "--max_wait=0", env=env,
    )  # fmt: skip
    assert res.returncode == 1
    assert "queued resource q is still WAITING_FOR_RESOURCES after --max_wait=0" in res.stderr


def test_launch_pod_start_failure_is_not_a_launch_py_exit_code(fake_cloud):
    env, state = fake_cloud
    (state / "plan").write_text("- startfail\n")
    res = run(
        "launch_pod.sh", "--name=trm", "--zone=z", "--config=configs/e1.py",
        "--workdir=gs://bkt/runs/e1", "--tpu_address=local", "--wait", env=env,
    )  # fmt: skip
    # The guard's exit 3 would otherwise read as launch.py's "dataset missing".
    assert res.returncode == 125
    assert "could not start run" in res.stderr
    calls = (state / "calls.log").read_text().splitlines()
    assert not any(".exit 2>/dev/null || echo running" in c for c in calls)  # never polled


FAKE_TF = """import json, os
class _Client:
    @staticmethod
    def trace(service_addr, logdir, duration_ms, **kw):
        with open(os.environ["TRACE_RECORD"], "w") as f:
            json.dump({"service_addr": service_addr, "logdir": logdir,
                       "duration_ms": duration_ms,
                       "TPU_LOAD_LIBRARY": os.environ.get("TPU_LOAD_LIBRARY")}, f)
class profiler:
    class experimental:
        client = _Client
"""


def test_profile_of_a_pod_traces_every_worker_into_gcs(fake_cloud, tmp_path):
    env, state = fake_cloud
    res = run(
        "capture_profile.sh", "--name=trm", "--zone=z", "--logdir=gs://bkt/runs/x",
        "--duration_ms=2000", env=dict(env, FAKE_TYPE="v4-16"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (ssh,) = [
        shlex.split(c) for c in (state / "calls.log").read_text().splitlines() if " ssh " in c
    ]
    assert ssh[:6] == ["compute", "tpus", "tpu-vm", "ssh", "trm", "--zone=z"]
    assert flag(ssh, "--worker") == "0" and "-L" not in ssh  # no tunnel: worker 0 captures
    # Run the remote command here, with a stand-in TensorFlow that records the trace call.
    fake_tf = tmp_path / "fake_tf"
    (fake_tf / "tensorflow").mkdir(parents=True)
    (fake_tf / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    record = tmp_path / "trace.json"
    worker_env = dict(env, PYTHONPATH=str(fake_tf), TRACE_RECORD=str(record))
    out = subprocess.run(
        ["bash", "-c", flag(ssh, "--command")], env=worker_env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(record.read_text()) == {
        "service_addr": "grpc://10.0.0.2:8466,grpc://10.0.0.3:8466",
        "logdir": "gs://bkt/runs/x",
        "duration_ms": 2000,
        "TPU_LOAD_LIBRARY": "0",
    }
    # The trainer's --tpu list gives the same hosts.
    res = run(
        "capture_profile.sh", "--name=trm", "--zone=z", "--logdir=gs://bkt/runs/x",
        "--tpu_address=grpc://10.1.0.5:8470,grpc://10.1.0.6:8470", "--dry-run", env=env,
    )  # fmt: skip
    (ssh,) = commands(res.stdout)
    assert "grpc://10.1.0.5:8466,grpc://10.1.0.6:8466 gs://bkt/runs/x 3000" in flag(
        ssh, "--command"
    )


def test_profile_of_a_pod_refuses_a_local_logdir(fake_cloud):
    env, state = fake_cloud
    for extra in ([], ["--type=v4-32"]):
        (state / "calls.log").unlink(missing_ok=True)
        res = run(
            "capture_profile.sh", "--name=trm", "--zone=z", "--logdir=/tmp/prof", *extra,
            env=dict(env, FAKE_TYPE="v4-16"),
        )  # fmt: skip
        assert res.returncode == 1
        (line,) = res.stderr.strip().splitlines()[-1:]
        assert line == (
            "error: a multi-host slice is profiled from worker 0 on the TPU, so --logdir must "
            "be gs://, got '/tmp/prof'"
        )
        calls = (state / "calls.log").read_text() if (state / "calls.log").exists() else ""
        assert " ssh " not in calls
