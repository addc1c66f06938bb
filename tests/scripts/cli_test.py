"""Tests of the Cloud TPU operation scripts: Every script: bash syntax, --help, required and unknown flags.

No network and no real gcloud (see conftest.py).
"""

import subprocess

import pytest

from tests.testing.scripts import (
    BASH_SCRIPTS,
    EXECUTABLES,
    run,
)


def test_bash_syntax_of_every_script():
    assert len(BASH_SCRIPTS) == 13
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
        ("tpu_address.sh", [], "--name --zone"),
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
