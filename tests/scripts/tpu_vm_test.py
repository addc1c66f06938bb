"""Tests of the Cloud TPU operation scripts: create_tpu.sh, delete_tpu.sh and setup_workers.sh: the gcloud commands of a TPU VM and its software.

No network and no real gcloud (see conftest.py).
"""

import subprocess

import pytest

from tests.testing.scripts import (
    SCRIPTS,
    commands,
    flag,
    run,
)


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
