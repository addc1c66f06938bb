"""Tests of the Cloud TPU operation scripts in scripts/ (bash), without network or a real gcloud.

Every script runs with CLOUDSDK_CONFIG pointing at an empty temp folder, and, outside --dry-run,
with a stub `gcloud` first on PATH that records its arguments, so no real gcloud is ever called.
"""

import importlib.util
import json
import os
import re
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
        "--version=tpu-vm-tf-2.20.1-pod-pjrt", "--dry-run", env=base_env,
    )  # fmt: skip
    (argv,) = commands(res.stdout)
    assert argv[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert flag(argv, "--runtime-version") == "tpu-vm-tf-2.20.1-pod-pjrt"
    assert "--spot" not in argv


@pytest.mark.parametrize(
    "tpu_type,version,message",
    [
        # A base image has no TF TPU runtime: a pod cannot serve TF's single-client program.
        ("v4-32", "tpu-ubuntu2204-base", "is not a TensorFlow TPU runtime image"),
        ("v4-8", "tpu-ubuntu2204-base", "is not a TensorFlow TPU runtime image"),
        ("v4-32", "tpu-vm-tf-2.19.0-pod-pjrt", "is TensorFlow 2.19, but requirements.txt pins"),
        ("v4-8", "tpu-vm-tf-2.21.0-pjrt", "is TensorFlow 2.21, but requirements.txt pins"),
        ("v4-16", "tpu-vm-tf-2.20.0-pjrt", "multi-host slice and needs the -pod- runtime"),
        ("v4-8", "tpu-vm-tf-2.20.0-pod-pjrt", "single host and needs the runtime without -pod-"),
    ],
)
def test_create_refuses_a_runtime_that_cannot_run_the_pinned_tf(
    tpu_type, version, message, base_env
):
    for extra in ([], ["--spot"]):
        res = run(
            "create_tpu.sh", "--name=t", "--zone=z", f"--type={tpu_type}",
            f"--version={version}", *extra, "--dry-run", env=base_env,
        )  # fmt: skip
        assert res.returncode == 1
        assert res.stdout == "" and commands(res.stderr) == []  # refused before any gcloud call
        (line,) = res.stderr.splitlines()
        assert line.startswith("error: ") and message in line
        want = "tpu-vm-tf-2.20.0-pod-pjrt" if tpu_type != "v4-8" else "tpu-vm-tf-2.20.0-pjrt"
        assert line.endswith(f"use --version={want}")


@pytest.fixture()
def repo_pinned_to(tmp_path):
    """A copy of scripts/ in a fake checkout whose requirements.txt pins another TF version."""

    def make(requirements):
        root = tmp_path / "repo"
        (root / "scripts").mkdir(parents=True)
        for f in SCRIPTS.iterdir():
            if f.is_file():
                (root / "scripts" / f.name).write_text(f.read_text())
        (root / "requirements.txt").write_text(requirements)
        return root

    return make


def test_tf_version_comes_from_the_requirements_pin(base_env, repo_pinned_to):
    root = repo_pinned_to("# comment\nkeras==3.15.1\ntensorflow-cpu==2.19.1  # pinned\n")

    def run_copy(script, *args):
        return subprocess.run(
            ["bash", str(root / "scripts" / script), *args, "--dry-run"],
            capture_output=True, text=True, env=base_env, timeout=30,
        )  # fmt: skip

    (create,) = commands(run_copy("create_tpu.sh", "--name=t", "--zone=z", "--type=v4-32").stdout)
    assert flag(create, "--version") == "tpu-vm-tf-2.19.1-pod-pjrt"
    res = run_copy("create_tpu.sh", "--name=t", "--zone=z", "--type=v4-8",
                   "--version=tpu-vm-tf-2.20.0-pjrt")  # fmt: skip
    assert res.returncode == 1 and "requirements.txt pins TensorFlow 2.19.1" in res.stderr
    res = run_copy("setup_workers.sh", "--name=t", "--zone=z", "--repo=https://x/y.git",
                   "--type=v4-8", "--skip_check")  # fmt: skip
    assert res.returncode == 0, res.stderr
    _, install = commands(res.stdout)
    assert "/tmp/trm_requirements.txt tensorflow-tpu==2.19.1 -f " in flag(install, "--command")
    assert "2.20" not in flag(install, "--command")


def test_missing_tf_pin_is_refused(base_env, repo_pinned_to):
    root = repo_pinned_to("tensorflow==2.20.0\n")
    for script in ("create_tpu.sh", "setup_workers.sh"):
        res = subprocess.run(
            ["bash", str(root / "scripts" / script), "--name=t", "--zone=z", "--type=v4-8",
             "--dry-run"],
            capture_output=True, text=True, env=base_env, timeout=30,
        )  # fmt: skip
        assert res.returncode == 1, (script, res.stderr)
        assert "has no 'tensorflow-cpu==X.Y.Z' line" in res.stderr
        assert commands(res.stdout) == []


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


FAKE_GCLOUD = """#!{python}
# Fake gcloud: logs its argv, answers `auth list` and `describe`, and plays a TPU worker. A
# launch.py start takes the next line "STATUS RC" of $FAKE_CLOUD/plan: it writes
# {{"status": STATUS}} to the run's WORKDIR/run_summary.json (gs://B/P lives in $FAKE_CLOUD/gcs/B/P;
# STATUS "-" writes nothing) and the poll of RUN.exit then prints RC ("running": never ends).
# RC "startfail" makes the start itself fail with the launch guard's exit code 3.
import json, os, re, shlex, sys
state = os.environ["FAKE_CLOUD"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as f:
    f.write(shlex.join(args) + "\\n")
def local(path):
    return os.path.join(state, "gcs", path[5:]) if path.startswith("gs://") else path
if args[:1] == ["auth"]:
    print("me@example.com")
    sys.exit(0)
opts = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
if "describe" in args:
    fmt = opts.get("--format", "")
    if "acceleratorType" in fmt:
        print(os.environ.get("FAKE_TYPE", "v4-16"))
    elif "ipAddress" in fmt:
        print("10.0.0.2;10.0.0.3")
    elif "state" in fmt:
        print(os.environ.get("FAKE_QR_STATE", "WAITING_FOR_RESOURCES"))
    sys.exit(0)
cmd = opts.get("--command", "")
if "launch.py" in cmd:
    with open(os.path.join(state, "plan")) as f:
        plan = [line for line in f.read().splitlines() if line.strip()]
    status, rc = plan.pop(0).split()
    with open(os.path.join(state, "plan"), "w") as f:
        f.write("\\n".join(plan) + "\\n")
    if rc == "startfail":
        print("w0: run x is still active; stop it with scripts/pod_stop.sh", file=sys.stderr)
        sys.exit(3)
    workdir = local(re.search(r"launch\\.py .*?--workdir=(\\S+)", cmd).group(1))
    if status != "-":
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "run_summary.json"), "w") as f:
            json.dump({{"status": status, "step": 7}}, f)
    with open(os.path.join(state, "rc"), "w") as f:
        f.write(rc)
    print("w0: started run")
elif ".exit" in cmd:
    with open(os.path.join(state, "rc")) as f:
        print(f.read())
sys.exit(0)
"""

FAKE_GSUTIL = """#!{python}
# Fake gsutil: `gsutil [-q] cat gs://B/P` prints $FAKE_CLOUD/gcs/B/P.
import os, sys
args = [a for a in sys.argv[1:] if a != "-q"]
assert args[0] == "cat" and args[1].startswith("gs://"), args
path = os.path.join(os.environ["FAKE_CLOUD"], "gcs", args[1][5:])
if not os.path.exists(path):
    sys.exit(1)
sys.stdout.write(open(path).read())
"""


@pytest.fixture()
def fake_cloud(tmp_path, base_env):
    """Fake gcloud + gsutil first on PATH (see FAKE_GCLOUD). Returns (env, state dir)."""
    state = tmp_path / "cloud"
    bindir = state / "bin"
    bindir.mkdir(parents=True)
    for name, text in (("gcloud", FAKE_GCLOUD), ("gsutil", FAKE_GSUTIL)):
        exe = bindir / name
        exe.write_text(text.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = dict(base_env, FAKE_CLOUD=str(state))
    env["PATH"] = f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env, state


def batch_summary(stdout):
    """Rows of the run_batch summary as (experiment, result) pairs, and its header line."""
    lines = stdout[stdout.index("=== run_batch summary") :].splitlines()
    return lines[0], [(line[:40].strip(), line[41:].rsplit(None, 1)[0]) for line in lines[2:]]


def test_run_batch_tells_finished_preempted_and_failed_apart(fake_cloud):
    env, state = fake_cloud
    # Launch order: e1 (preempted: SIGTERM save, exit 0), e2, e3, then e1 again (re-queued).
    (state / "plan").write_text("preempted 0\n- 3\nrunning 0\nfinished 0\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--tpu_address=grpc://10.0.0.2:8470", "--poll_seconds=0", "configs/e1.py",
        "configs/e2.py", "configs/e3.py", env=env,
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
        "configs/e2.py", "configs/e3.py", env=env,
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
    assert not any(".exit" in c for c in (state / "calls.log").read_text().splitlines())


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


def load_check_tpu():
    spec = importlib.util.spec_from_file_location("check_tpu", SCRIPTS / "check_tpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def trainer_tpu_path(monkeypatch):
    """Records check_tpu.py's calls into trm_tf.distribute; a direct resolver call is an error."""
    import tensorflow as tf

    from trm_tf import distribute

    calls = []

    class Resolver:
        def __init__(self, tpu, chips):
            self.tpu, self.chips = tpu, chips

        def num_accelerators(self):
            return {"TPU": self.chips}

    def tpu_resolver(tpu):
        calls.append(("tpu_resolver", tpu))
        return Resolver(tpu, chips=0)

    def direct(*a, **k):
        raise AssertionError("check_tpu.py must build the resolver through trm_tf.distribute")

    monkeypatch.setattr(distribute, "tpu_resolver", tpu_resolver, raising=False)
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", direct)
    return distribute, calls


def test_check_tpu_resolves_the_tpu_like_the_trainer(trainer_tpu_path, monkeypatch, capsys):
    distribute, calls = trainer_tpu_path
    check_tpu = load_check_tpu()

    def get_strategy(tpu, num_logical_cpus=1):
        calls.append(("get_strategy", tpu))
        raise distribute.TPUUnavailableError(f"Cannot use TPU {tpu!r}: UnavailableError: down")

    monkeypatch.setattr(distribute, "get_strategy", get_strategy)
    tpu = "grpc://10.0.0.2:8470,grpc://10.0.0.3:8470"
    assert check_tpu.main([f"--tpu={tpu}"]) == 1
    # The comma-separated string reaches the trainer's functions unchanged.
    assert calls == [("tpu_resolver", tpu), ("get_strategy", tpu)]
    report = json.loads(capsys.readouterr().out)
    assert report["tpu"] == tpu
    assert report["error"] == f"Cannot use TPU {tpu!r}: UnavailableError: down"

    # What the trainer's resolver raises is what the check reports.
    def broken_resolver(tpu):
        raise NotImplementedError("Using multiple TPUs in a single session is not yet implemented")

    monkeypatch.setattr(distribute, "tpu_resolver", broken_resolver)
    assert check_tpu.main([f"--tpu={tpu}"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == (
        "cannot build the TPU resolver: NotImplementedError: Using multiple TPUs in a single "
        "session is not yet implemented"
    )


def test_check_tpu_local_without_chips_and_strategy_without_tpu(
    trainer_tpu_path, monkeypatch, capsys
):
    import tensorflow as tf

    distribute, calls = trainer_tpu_path
    check_tpu = load_check_tpu()
    # --tpu=local on a host without chips: stops before initialising anything.
    monkeypatch.setattr(distribute, "get_strategy", lambda *a, **k: calls.append("init"))
    assert check_tpu.main(["--tpu=local"]) == 1
    assert calls == [("tpu_resolver", "local")]
    assert json.loads(capsys.readouterr().out)["error"] == (
        "no TPU chips visible to TensorFlow on this host"
    )
    # A strategy whose replicas compute correctly but are not TPUs still fails the check (the
    # matmul itself runs for real on the two logical CPUs of the test process).
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    monkeypatch.setattr(
        distribute, "get_strategy", lambda *a, **k: tf.distribute.MirroredStrategy(cpus)
    )
    assert check_tpu.main(["--tpu=grpc://10.0.0.2:8470"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["num_replicas"] == 2 and report["matmul_ok"] is True
    assert report["tpu_devices"] == 0 and report["error"] == "the strategy has no TPU devices"


ENV_PROBE = (
    "import json, os, sys\n"
    "keys = ('NEXT_PLUGGABLE_DEVICE_USE_C_API', 'TF_PLUGGABLE_DEVICE_LIBRARY_PATH',\n"
    "        'TPU_LOAD_LIBRARY')\n"
    "print('ENV', json.dumps({k: os.environ.get(k) for k in keys}, sort_keys=True))\n"
)


@pytest.mark.parametrize(
    "tpu_type,address,remote_flag",
    [("v4-8", "local", "--pjrt"), ("v4-16", "grpc://10.0.0.2:8470", "--env=TPU_LOAD_LIBRARY=0")],
)
def test_setup_check_runs_in_the_trainers_environment(
    tpu_type, address, remote_flag, base_env, tmp_path
):
    """The TPU check sees the same TPU environment variables as launch_pod.sh's trainer."""
    home = tmp_path / "home"
    (home / "trm-tf" / "scripts").mkdir(parents=True)
    (home / "trm-tf" / "scripts" / "check_tpu.py").write_text(ENV_PROBE)
    res = run(
        "setup_workers.sh", "--name=t", "--zone=z", "--repo=https://x/y.git", "--skip_install",
        f"--type={tpu_type}", f"--tpu_address={address}", "--dry-run", env=base_env,
    )  # fmt: skip
    check = flag(commands(res.stdout)[-1], "--command")
    worker_env = {k: v for k, v in base_env.items() if "PLUGGABLE" not in k and "TPU_" not in k}
    worker_env["HOME"] = str(home)
    worker_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{worker_env['PATH']}"
    out = subprocess.run(["bash", "-c", check], env=worker_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    trainer = subprocess.run(
        ["bash", str(SCRIPTS / "remote_run.sh"), "--run=r", f"--workdir={tmp_path}/w",
         "--worker_id=0", remote_flag, "--", sys.executable, "-c", ENV_PROBE],
        env=dict(worker_env, TRM_LOG_DIR=str(tmp_path / "logs")), capture_output=True, text=True,
    )  # fmt: skip
    assert trainer.returncode == 0, trainer.stderr
    (trainer_env,) = [
        x for x in (tmp_path / "logs" / "r.log").read_text().splitlines() if x[:4] == "ENV "
    ]
    assert out.stdout.strip() == trainer_env
    assert ('"TPU_LOAD_LIBRARY": "0"' in trainer_env) == (tpu_type != "v4-8")
