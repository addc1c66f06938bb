"""Tests of the Cloud TPU operation scripts in scripts/ (bash), without network or a real gcloud.

Every script runs with CLOUDSDK_CONFIG pointing at an empty temp folder, and, outside --dry-run,
with a stub `gcloud` first on PATH that records its arguments, so no real gcloud is ever called.
"""

import os
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
BASH_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
EXECUTABLES = [p.name for p in BASH_SCRIPTS if p.name != "lib.sh"]


@pytest.fixture(scope="module")
def base_env(tmp_path_factory):
    """Environment with an empty gcloud config dir (no credentials reachable)."""
    env = dict(os.environ)
    env["CLOUDSDK_CONFIG"] = str(tmp_path_factory.mktemp("gcloud_config"))
    for var in ("TRM_TPU_NAME", "TRM_TPU_ZONE", "TRM_GCP_PROJECT"):
        env.pop(var, None)
    return env


def run(script, *args, env, cwd=REPO):
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


def commands(stdout, program="gcloud"):
    """Parses the '+ ...' lines of a dry run into argument lists (only those of `program`)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("+ "):
            argv = shlex.split(line[2:].removesuffix(" &"))
            if argv and argv[0] == program:
                out.append(argv)
    return out


def flag(argv, name):
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_bash_syntax_of_every_script():
    assert len(BASH_SCRIPTS) == 12
    for path in BASH_SCRIPTS:
        res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert res.returncode == 0, (path.name, res.stderr)


@pytest.mark.parametrize("script", EXECUTABLES)
def test_help_exits_zero_with_usage(script, base_env):
    res = run(script, "--help", env=base_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Usage: "), res.stdout[:200]
    assert script in res.stdout


@pytest.mark.parametrize(
    "script,args,missing",
    [
        ("create_tpu.sh", ["--zone=z"], "--name --type"),
        ("delete_tpu.sh", ["--name=t"], "--zone"),
        ("setup_workers.sh", [], "--name --zone"),
        ("launch_pod.sh", ["--name=t", "--zone=z"], "--config --workdir"),
        ("run_batch.sh", ["--name=t", "--zone=z", "c.py"], "--workdir_root"),
        ("build_data.sh", ["--dataset=a/b"], "--data_dir"),
        ("capture_profile.sh", ["--name=t", "--zone=z"], "--logdir"),
        ("tensorboard.sh", [], "--logdir"),
        ("pod_status.sh", ["--zone=z"], "--name"),
        ("pod_stop.sh", ["--name=t"], "--zone"),
    ],
)
def test_missing_required_flags_are_named(script, args, missing, base_env):
    res = run(script, *args, "--dry-run", env=base_env)
    assert res.returncode == 2
    assert f"missing required flag(s): {missing}" in res.stderr
    assert "--help" in res.stderr
    assert "gcloud" not in res.stdout


def test_unknown_flag_and_bad_type_are_rejected(base_env):
    res = run("create_tpu.sh", "--name=t", "--zone=z", "--type=v4-32", "--bogus", env=base_env)
    assert res.returncode == 2 and "unknown argument '--bogus'" in res.stderr
    res = run("create_tpu.sh", "--name=t", "--zone=z", "--type=big", "--dry-run", env=base_env)
    assert res.returncode == 2 and "--type must look like v4-32" in res.stderr


def test_create_on_demand_pod_uses_pod_runtime(base_env):
    res = run(
        "create_tpu.sh", "--name=trm", "--zone=us-central2-b", "--type=v4-32", "--dry-run",
        env=base_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert commands(res.stdout) == [
        [
            "gcloud", "compute", "tpus", "tpu-vm", "create", "trm", "--zone=us-central2-b",
            "--accelerator-type=v4-32", "--version=tpu-vm-tf-2.20.0-pod-pjrt", "--quiet",
        ]
    ]  # fmt: skip


def test_create_single_host_spot_goes_through_queued_resources(base_env):
    res = run(
        "create_tpu.sh", "--name", "trm8", "--zone", "us-central2-b", "--type=v4-8", "--spot",
        "--project=proj", "--dry-run", env=base_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert commands(res.stdout) == [
        [
            "gcloud", "compute", "tpus", "queued-resources", "create", "trm8", "--node-id=trm8",
            "--zone=us-central2-b", "--accelerator-type=v4-8",
            "--runtime-version=tpu-vm-tf-2.20.0-pjrt", "--spot", "--project=proj", "--quiet",
        ]
    ]  # fmt: skip


def test_create_queued_with_explicit_version_is_not_spot(base_env):
    res = run(
        "create_tpu.sh", "--name=q", "--zone=z", "--type=v4-64", "--queued",
        "--version=tpu-ubuntu2204-base", "--dry-run", env=base_env,
    )  # fmt: skip
    (argv,) = commands(res.stdout)
    assert argv[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert flag(argv, "--runtime-version") == "tpu-ubuntu2204-base"
    assert "--spot" not in argv


def test_delete_tpu_vm_and_queued_resource(base_env):
    res = run("delete_tpu.sh", "--name=t", "--zone=z", "--dry-run", env=base_env)
    assert commands(res.stdout) == [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "t", "--zone=z", "--quiet"]
    ]
    res = run("delete_tpu.sh", "--name=t", "--zone=z", "--queued", "--dry-run", env=base_env)
    assert commands(res.stdout) == [
        ["gcloud", "compute", "tpus", "queued-resources", "delete", "t", "--zone=z", "--force",
         "--quiet"]
    ]  # fmt: skip


def test_setup_workers_copies_installs_and_checks_every_worker(base_env, tmp_path):
    env = dict(base_env, TMPDIR=str(tmp_path))
    res = run(
        "setup_workers.sh", "--name=trm", "--zone=us-central2-b", "--type=v4-32",
        "--tpu_address=grpc://10.0.0.2:8470,grpc://10.0.0.3:8470", "--dry-run", env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    # The tarball is only described, not created, in a dry run.
    assert "git ls-files -z | tar --null -czf" in res.stdout
    assert not (tmp_path / "trm-tf-src.tar.gz").exists()
    scp, unpack, install, chips, check = commands(res.stdout)
    assert scp == [
        "gcloud", "compute", "tpus", "tpu-vm", "scp", str(tmp_path / "trm-tf-src.tar.gz"),
        "trm:trm-tf-src.tar.gz", "--zone=us-central2-b", "--worker=all", "--quiet",
    ]  # fmt: skip
    for argv in (unpack, install, chips):
        assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "trm"]
        assert flag(argv, "--worker") == "all" and flag(argv, "--zone") == "us-central2-b"
    assert "tar -xzf ~/trm-tf-src.tar.gz -C ~/trm-tf" in flag(unpack, "--command")
    cmd = flag(install, "--command")
    assert "sed '/^tensorflow-cpu/d' requirements.txt > /tmp/trm_requirements.txt" in cmd
    assert (
        "pip install -r /tmp/trm_requirements.txt tensorflow-tpu==2.20.0 "
        "-f https://storage.googleapis.com/libtpu-tf-releases/index.html"
    ) in cmd
    assert "install cloud-tpu-client" not in cmd
    assert "/dev/accel*" in flag(chips, "--command")
    # The slice-wide check runs once, from worker 0, the way the trainer runs on a pod.
    assert flag(check, "--worker") == "0"
    assert flag(check, "--command") == (
        "cd ~/trm-tf && TPU_LOAD_LIBRARY=0 python3 scripts/check_tpu.py "
        "--tpu=grpc://10.0.0.2:8470,grpc://10.0.0.3:8470"
    )


def test_setup_workers_from_git_url_single_host(base_env):
    res = run(
        "setup_workers.sh", "--name=t", "--zone=z", "--repo=https://example.com/trm-tf.git",
        "--ref=v1", "--type=v4-8", "--skip_install", "--dry-run", env=base_env,
    )  # fmt: skip
    clone, chips, check = commands(res.stdout)
    assert flag(clone, "--command") == (
        "rm -rf ~/trm-tf && git clone --depth=1 --branch=v1 https://example.com/trm-tf.git ~/trm-tf"
    )
    assert "tar" not in res.stdout
    assert flag(check, "--command").endswith("python3 scripts/check_tpu.py --tpu=local")


def launch_dry_run(env, *extra):
    return run(
        "launch_pod.sh", "--name=trm", "--zone=us-central2-b", "--config=configs/e1_small.py",
        "--workdir=gs://bkt/runs/e1_small", "--run=e1-a", *extra, env=env,
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
        "--tpu=grpc://WORKER_IPS:8470 --config.train.steps=10 '--note=a b' "
        "> ~/trm_logs/e1-a.launcher.log 2>&1 < /dev/null &"
    ) in remote
    assert "~/trm_logs/e1-a.log" in res.stderr
    assert "gs://bkt/runs/e1_small/logs/worker-<i>.log" in res.stderr


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
        "--tpu_address=grpc://10.0.0.2:8470", "configs/e1_small.py", "configs/e2_big.py",
        "configs/e3_new.py:arg=1", "--dry-run", "--", "--seed=3", env=base_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    ssh = commands(res.stdout)
    launches = [a for a in ssh if "launch.py" in flag(a, "--command")]
    assert len(launches) == 2 and len(ssh) == 4  # a launch and a poll per run
    first, second = (flag(a, "--command") for a in launches)
    assert f"--config=configs/e2_big.py --workdir={tmp_path}/e2_big" in first
    assert f"--config=configs/e3_new.py:arg=1 --workdir={tmp_path}/e3_new_arg_1" in second
    assert all("--tpu=grpc://10.0.0.2:8470 --seed=3" in c for c in (first, second))
    assert "e1_small: already finished" in res.stderr
    summary = res.stdout[res.stdout.index("=== run_batch summary") :].splitlines()
    assert summary[0] == "=== run_batch summary (3 experiments, 0 failed)"
    assert [line.split()[:2] for line in summary[2:]] == [
        ["e1_small", "skipped"],
        ["e2_big", "ok"],
        ["e3_new_arg_1", "ok"],
    ]


def test_tensorboard_and_profile_capture(base_env):
    res = run("tensorboard.sh", "--logdir=gs://bkt/runs", "--port=6007", "--dry-run", env=base_env)
    assert commands(res.stdout, "tensorboard") == [
        ["tensorboard", "--logdir=gs://bkt/runs", "--host=127.0.0.1", "--port=6007"]
    ]
    res = run(
        "capture_profile.sh", "--name=trm", "--zone=z", "--logdir=gs://bkt/runs/x",
        "--port=9012", "--duration_ms=2000", "--dry-run", env=base_env,
    )  # fmt: skip
    (tunnel,) = commands(res.stdout)
    assert tunnel == [
        "gcloud", "compute", "tpus", "tpu-vm", "ssh", "trm", "--zone=z", "--worker=0", "--quiet",
        "--", "-N", "-L", "9012:localhost:9012",
    ]  # fmt: skip
    (trace,) = commands(res.stdout, "python3")
    assert "tf.profiler.experimental.client.trace" in trace[2]
    assert trace[3:] == ["grpc://localhost:9012", "gs://bkt/runs/x", "2000"]


@pytest.fixture(scope="module")
def path_without_gcloud(tmp_path_factory):
    """A PATH that holds every program of the current PATH except the Cloud SDK's."""
    bindir = tmp_path_factory.mktemp("bin_no_gcloud")
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src = os.path.join(d, name)
            if name in {"gcloud", "gsutil", "bq"} or (bindir / name).exists():
                continue
            if os.path.isfile(src) and os.access(src, os.X_OK):
                (bindir / name).symlink_to(src)
    return str(bindir)


@pytest.mark.parametrize(
    "script,args",
    [
        ("create_tpu.sh", ["--name=t", "--zone=z", "--type=v4-8"]),
        ("delete_tpu.sh", ["--name=t", "--zone=z"]),
        ("setup_workers.sh", ["--name=t", "--zone=z"]),
        ("launch_pod.sh", ["--name=t", "--zone=z", "--config=c.py", "--workdir=gs://b/r"]),
        ("run_batch.sh", ["--name=t", "--zone=z", "--workdir_root=gs://b/r", "c.py"]),
        ("pod_status.sh", ["--name=t", "--zone=z"]),
        ("pod_stop.sh", ["--name=t", "--zone=z"]),
        ("capture_profile.sh", ["--name=t", "--zone=z", "--logdir=/tmp/x"]),
        ("build_data.sh", ["--data_dir=gs://b/tfds", "--dataset=a/b"]),
    ],
)
def test_fails_fast_without_gcloud(script, args, base_env, path_without_gcloud):
    env = dict(base_env, PATH=path_without_gcloud)
    res = run(script, *args, env=env)
    assert res.returncode == 1
    assert "gcloud not found on PATH" in res.stderr
    assert res.stdout == ""


@pytest.fixture()
def stub_gcloud(tmp_path, base_env):
    """A fake gcloud first on PATH: logs its argv; `auth list` prints $STUB_ACCOUNT."""
    bindir = tmp_path / "stub_bin"
    bindir.mkdir()
    calls = tmp_path / "calls.log"
    stub = bindir / "gcloud"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        'if [[ $1 == auth ]]; then echo "${STUB_ACCOUNT:-}"; fi\n'
        "exit 0\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = dict(base_env, PATH=f"{bindir}{os.pathsep}{base_env['PATH']}")
    return env, calls


def test_not_authenticated_is_reported(stub_gcloud):
    env, calls = stub_gcloud
    res = run("create_tpu.sh", "--name=t", "--zone=z", "--type=v4-8", env=env)
    assert res.returncode == 1
    assert "gcloud is not authenticated" in res.stderr
    assert calls.read_text().splitlines() == [
        "auth list --filter=status:ACTIVE --format=value(account)"
    ]


def test_real_mode_calls_gcloud_with_the_printed_arguments(stub_gcloud):
    env, calls = stub_gcloud
    env = dict(env, STUB_ACCOUNT="me@example.com")
    res = run("delete_tpu.sh", "--name=t", "--zone=z", "--queued", env=env)
    assert res.returncode == 0, res.stderr
    assert calls.read_text().splitlines()[-1] == (
        "compute tpus queued-resources delete t --zone=z --force --quiet"
    )
    assert "+ gcloud compute tpus queued-resources delete t" in res.stderr


def test_launch_command_runs_on_a_fake_worker(base_env, tmp_path):
    """Executes the remote command of a dry run locally, with $HOME as a fake worker."""
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
        "sys.exit(3)\n"
    )
    workdir = tmp_path / "runs" / "e1"
    res = run(
        "launch_pod.sh", "--name=t", "--zone=z", "--config=configs/e1.py", f"--workdir={workdir}",
        "--run=e1-x", "--tpu_address=grpc://10.0.0.2:8470", "--dry-run", "--", "--seed=1",
        env=base_env,
    )  # fmt: skip
    remote = flag(commands(res.stdout)[0], "--command")
    worker_env = dict(base_env, HOME=str(home), TRM_LOG_DIR=str(home / "trm_logs"))
    worker_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{worker_env['PATH']}"
    started = subprocess.run(
        ["bash", "-c", remote], env=worker_env, capture_output=True, text=True, timeout=20
    )
    assert started.returncode == 0, started.stderr
    assert "started run e1-x" in started.stdout
    exit_file = home / "trm_logs" / "e1-x.exit"
    deadline = time.time() + 15
    while not exit_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert exit_file.read_text().strip() == "3"
    log = (home / "trm_logs" / "e1-x.log").read_text()
    assert (
        "ARGS ['--config=configs/e1.py', "
        f"'--workdir={workdir}', '--tpu=grpc://10.0.0.2:8470', '--seed=1']"
    ) in log
    assert "TPU_LOAD_LIBRARY 0" in log and "=== exit code 3" in log
    assert (workdir / "logs" / "worker-0.log").read_text() == log
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
    copied = (tmp_path / "w" / "logs" / "worker-2.log").read_text()
    assert "received a stop signal" in copied and "=== exit code 143" in copied


def test_check_tpu_help_needs_no_tensorflow(base_env):
    # Importing TensorFlow costs ~10 s on the shared CPU, so only the CLI surface is tested here;
    # check_tpu.py imports TF after argument parsing.
    res = subprocess.run(
        [sys.executable, "-S", str(SCRIPTS / "check_tpu.py"), "--help"],
        capture_output=True,
        text=True,
        env=base_env,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert "--tpu TPU" in res.stdout and "--expect EXPECT" in res.stdout
