"""Tests of the Cloud TPU operation scripts: scripts/check_tpu.py goes through the trainer's strategy code and environment.

No network and no real gcloud (see conftest.py).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testing.scripts import (
    SCRIPTS,
    commands,
    flag,
    run,
)


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
