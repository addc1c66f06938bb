"""Tests of the Cloud TPU operation scripts: launch_pod.sh, pod_status.sh, pod_stop.sh and remote_run.sh: starting, watching and stopping a run on the workers.

No network and no real gcloud (see conftest.py).
"""

import os
import re
import subprocess
import time

from tests.testing.scripts import (
    SCRIPTS,
    commands,
    flag,
    run,
)


def launch_dry_run(env, *extra):
    return run(
        "launch_pod.sh", "--name=trm", "--zone=us-central2-b", "--config=configs/e1_small.py",
        "--workdir=gs://bkt/runs/e1_small", "--data_dir=gs://bkt/tfds", "--run=e1-a", *extra,
        env=env,
    )  # fmt: skip


def test_launch_pod_runs_the_chief_with_grpc_endpoints(base_env):
    res = launch_dry_run(
        base_env, "--type=v4-32", "--dry-run", "--", "--config.train.steps=10", "--note=a b"
    )
    assert res.returncode == 0, res.stderr
    # The worker IPs come from describe (printed on stderr in a dry run).
    (describe,) = commands(res.stderr)
    assert describe[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "trm"]
    assert flag(describe, "--format") == "value(networkEndpoints[].ipAddress)"
    (ssh,) = commands(res.stdout)
    assert flag(ssh, "--worker") == "0" and flag(ssh, "--zone") == "us-central2-b"
    remote = flag(ssh, "--command")
    assert (
        "cd ~/trm-tf && setsid nohup bash scripts/remote_run.sh --run=e1-a "
        "--workdir=gs://bkt/runs/e1_small --env=TPU_LOAD_LIBRARY=0 -- "
        "python3 launch.py --config=configs/e1_small.py --workdir=gs://bkt/runs/e1_small "
        "--tpu=grpc://WORKER_IPS:8470 --config.data.data_dir=gs://bkt/tfds "
        "--config.train.steps=10 '--note=a b' "
        "> ~/trm_logs/e1-a.launcher.log 2>&1 < /dev/null &"
    ) in remote
    assert "~/trm_logs/e1-a.log" in res.stderr
    assert "gs://bkt/runs/e1_small/logs/worker-<i>-<UTC start>.log" in res.stderr


def test_launch_all_workers_single_host_and_wait(base_env):
    res = launch_dry_run(base_env, "--all_workers", "--wait", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "describe" not in res.stderr
    launch, poll = commands(res.stdout)
    assert flag(launch, "--worker") == "all"
    remote = flag(launch, "--command")
    assert "remote_run.sh --run=e1-a --workdir=gs://bkt/runs/e1_small --pjrt --" in remote
    assert "--tpu=local" in remote
    assert flag(poll, "--worker") == "0"
    assert flag(poll, "--command") == "cat ~/trm_logs/e1-a.exit 2>/dev/null || echo running"


def test_status_and_stop_target_every_worker(base_env):
    res = run("pod_status.sh", "--name=t", "--zone=z", "--run=e1-a", "--lines=5", "--dry-run",
              env=base_env)  # fmt: skip
    (argv,) = commands(res.stdout)
    assert flag(argv, "--worker") == "all"
    remote = flag(argv, "--command")
    assert "ls -t e1-a.log" in remote and "tail -n 5" in remote and "ps -eo" in remote
    res = run("pod_stop.sh", "--name=t", "--zone=z", "--signal=KILL", "--dry-run", env=base_env)
    (argv,) = commands(res.stdout)
    assert flag(argv, "--worker") == "all"
    remote = flag(argv, "--command")
    assert "for f in *.pid" in remote and 'kill -KILL -- "-$p"' in remote
    res = run("pod_stop.sh", "--name=t", "--zone=z", "--signal=HUP", "--dry-run", env=base_env)
    assert res.returncode == 2


def test_launch_command_runs_on_a_fake_worker(fake_cloud, tmp_path):
    """Executes the remote command of a dry run locally, with $HOME as a fake worker, twice (a relaunch
    after a preemption): each attempt's log is kept in the workdir, the second does not overwrite the first."""
    env, state = fake_cloud
    home = tmp_path / "home"
    (home / "trm-tf" / "scripts").mkdir(parents=True)
    (home / "trm-tf" / "scripts" / "remote_run.sh").write_text(
        (SCRIPTS / "remote_run.sh").read_text()
    )
    # A stand-in for launch.py: records its arguments and the env the wrapper gave it.
    (home / "trm-tf" / "launch.py").write_text(
        "import os, sys\n"
        "print('ARGS', sys.argv[1:])\n"
        "print('TPU_LOAD_LIBRARY', os.environ.get('TPU_LOAD_LIBRARY'))\n"
        "print('ATTEMPT', os.environ['ATTEMPT'])\n"
        "sys.exit(3)\n"
    )
    res = run(
        "launch_pod.sh", "--name=t", "--zone=z", "--config=configs/e1.py",
        "--workdir=gs://bkt/runs/e1", "--data_dir=gs://bkt/tfds", "--run=e1-x",
        "--tpu_address=grpc://10.0.0.2:8470", "--dry-run", "--", "--seed=1", env=env,
    )  # fmt: skip
    remote = flag(commands(res.stdout)[0], "--command")
    logs = state / "gcs" / "bkt" / "runs" / "e1" / "logs"
    exit_file = home / "trm_logs" / "e1-x.exit"
    for attempt in (1, 2):
        second = int(time.time())
        worker_env = dict(env, HOME=str(home), TRM_LOG_DIR=str(home / "trm_logs"))
        worker_env["ATTEMPT"] = str(attempt)
        started = subprocess.run(
            ["bash", "-c", remote], env=worker_env, capture_output=True, text=True, timeout=20
        )
        assert started.returncode == 0, started.stderr
        assert "started run e1-x" in started.stdout
        deadline = time.time() + 15
        while not exit_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert exit_file.read_text().strip() == "3"
        while int(time.time()) == second:  # log names carry the start time, to the second
            time.sleep(0.05)
    log = (home / "trm_logs" / "e1-x.log").read_text()
    assert (
        "ARGS ['--config=configs/e1.py', '--workdir=gs://bkt/runs/e1', "
        "'--tpu=grpc://10.0.0.2:8470', '--config.data.data_dir=gs://bkt/tfds', '--seed=1']"
    ) in log
    assert "TPU_LOAD_LIBRARY 0" in log and "=== exit code 3" in log
    first, second = sorted(logs.glob("worker-0-*.log"))
    assert re.fullmatch(r"worker-0-\d{8}-\d{6}\.log", first.name)
    assert "ATTEMPT 1" in first.read_text() and "ATTEMPT 2" not in first.read_text()
    assert "ATTEMPT 2" in second.read_text()
    assert not (home / "trm_logs" / "e1-x.pid").exists()


def test_remote_run_records_stop_signal(tmp_path, base_env):
    """pod_stop.sh's TERM to the process group still yields a copied log and exit code 143."""
    env = dict(base_env, TRM_LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.Popen(
        ["setsid", "bash", str(SCRIPTS / "remote_run.sh"), "--run=r", f"--workdir={tmp_path}/w",
         "--worker_id=2", "--", "sleep", "30"],
        env=env,
    )  # fmt: skip
    pid_file = tmp_path / "logs" / "r.pid"
    deadline = time.time() + 10
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    pgid = int(pid_file.read_text())
    assert pgid == proc.pid
    time.sleep(0.2)
    os.killpg(pgid, 15)
    assert proc.wait(timeout=10) == 143
    assert (tmp_path / "logs" / "r.exit").read_text().strip() == "143"
    (copied,) = [p.read_text() for p in (tmp_path / "w" / "logs").glob("worker-2-*.log")]
    assert "received a stop signal" in copied and "=== exit code 143" in copied
