"""Tests of the first hour on a fresh slice (issue 21, section 2): data dir and paths of a pod launch,
the runtime image of the zone, a held run.lock in a batch, and the `--tpu` value of a command typed on
worker 0 (TPU name refused, TPU_LOAD_LIBRARY set before TensorFlow is imported).

No network and no real gcloud (see conftest.py); TensorFlow is imported by one test only.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.testing.scripts import (
    REPO,
    batch_summary,
    launched_commands,
    run,
)

# --- 1. A pod launch gets a gs:// data dir, or stops before any gcloud call -----------------------


@pytest.mark.parametrize(
    "script,args",
    [
        ("launch_pod.sh", ["--config=configs/e1_1_baseline.py", "--workdir=gs://b/runs/e1"]),
        ("run_batch.sh", ["--workdir_root=gs://b/runs", "configs/e1_1_baseline.py"]),
    ],
)
def test_pod_launch_without_gcs_data_dir_stops_before_gcloud(script, args, fake_cloud):
    env, state = fake_cloud
    cases = [
        ([], "no --data_dir: the hosts of a multi-host slice cannot read the config's default"),
        (["--data_dir=/data/tfds"], "--data_dir=/data/tfds is not gs://"),
        (["--type=v4-32"], "no --data_dir"),
        (["--tpu_address=grpc://10.0.0.2:8470,grpc://10.0.0.3:8470"], "no --data_dir"),
    ]
    for extra, message in cases:
        res = run(script, "--name=trm", "--zone=z", *args, *extra, env=env)
        assert res.returncode == 1, (extra, res.stderr)
        (line,) = res.stderr.splitlines()
        assert line.startswith("error: ") and message in line, line
        assert not (state / "calls.log").exists(), "gcloud was called"
    # A local workdir on a pod is refused the same way.
    local = [a.replace("gs://b/runs", "/tmp/runs") for a in args]
    res = run(script, "--name=trm", "--zone=z", *local, "--data_dir=gs://b/tfds", env=env)
    assert res.returncode == 1 and "=/tmp/runs" in res.stderr and "is not gs://" in res.stderr
    assert not (state / "calls.log").exists()


def test_data_dir_reaches_launch_py(fake_cloud):
    env, state = fake_cloud
    for how in (["--data_dir=gs://b/tfds"], ["--", "--config.data.data_dir=gs://b/tfds"]):
        res = run(
            "launch_pod.sh", "--name=trm", "--zone=z", "--config=configs/e1_1_baseline.py",
            "--workdir=gs://b/runs/e1", "--dry-run", *how, env=env,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        (launch,) = launched_commands(res.stdout)
        assert launch.count("--config.data.data_dir=gs://b/tfds") == 1, launch
    # TRM_DATA_DIR stands in for --data_dir, in a batch too.
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://b/runs", "--dry-run",
        "configs/e1_1_baseline.py", "configs/e2_1_ema_off.py",
        env=dict(env, TRM_DATA_DIR="gs://b/tfds"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    launches = launched_commands(res.stdout)
    assert len(launches) == 2
    assert all("--config.data.data_dir=gs://b/tfds" in a for a in launches)
    # Two different data dirs are refused.
    res = run(
        "launch_pod.sh", "--name=trm", "--zone=z", "--config=c.py", "--workdir=gs://b/r",
        "--data_dir=gs://b/x", "--dry-run", "--", "--config.data.data_dir=gs://b/y", env=env,
    )  # fmt: skip
    assert res.returncode == 2 and "disagree" in res.stderr
    # A one-host slice may use its worker's paths (the config's default data dir there).
    res = run(
        "launch_pod.sh", "--name=trm", "--zone=z", "--config=configs/e1_1_baseline.py",
        "--workdir=/tmp/runs/e1", "--type=v4-8", "--dry-run", env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (launch,) = launched_commands(res.stdout)
    assert "--tpu=local" in launch and not any("data_dir" in a for a in launch)


# --- 7. The runtime image must exist in the zone ----------------------------------------------------


def test_create_lists_the_zone_versions_before_creating(fake_cloud):
    env, state = fake_cloud
    res = run("create_tpu.sh", "--name=trm", "--zone=us-central2-b", "--type=v4-32", env=env)
    assert res.returncode == 0, res.stderr
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[1:] == [
        "compute tpus tpu-vm versions list --zone=us-central2-b '--format=value(version)' --quiet",
        "compute tpus tpu-vm create trm --zone=us-central2-b --accelerator-type=v4-32 "
        "--version=tpu-vm-tf-2.20.0-pod-pjrt --quiet",
    ]


@pytest.mark.parametrize(
    "offered,tpu_type,message",
    [
        # Another 2.20 patch release of the same variant: use it.
        (
            [
                "tpu-ubuntu2204-base",
                "tpu-vm-tf-2.19.0-pod-pjrt",
                "tpu-vm-tf-2.20.1-pjrt",
                "tpu-vm-tf-2.20.1-pod-pjrt",
                "tpu-vm-tf-2.20.2-pod-pjrt",
            ],
            "v4-32",
            "us-central2-b does not offer the TPU runtime tpu-vm-tf-2.20.0-pod-pjrt; its TensorFlow "
            "images: tpu-vm-tf-2.19.0-pod-pjrt tpu-vm-tf-2.20.1-pjrt tpu-vm-tf-2.20.1-pod-pjrt "
            "tpu-vm-tf-2.20.2-pod-pjrt; use --version=tpu-vm-tf-2.20.2-pod-pjrt (same TensorFlow "
            "2.20)",
        ),
        # No TF 2.20 image for one host: the pin has to move.
        (
            [
                "projects/p/locations/z/runtimeVersions/tpu-vm-tf-2.19.0-pjrt",
                "tpu-vm-tf-2.21.0-pjrt",
                "tpu-vm-tf-2.20.0-pod-pjrt",
            ],
            "v4-8",
            "us-central2-b does not offer the TPU runtime tpu-vm-tf-2.20.0-pjrt; its TensorFlow "
            "images: tpu-vm-tf-2.19.0-pjrt tpu-vm-tf-2.20.0-pod-pjrt tpu-vm-tf-2.21.0-pjrt; none is "
            "TensorFlow 2.20 for --type=v4-8: move the tensorflow-cpu==2.20.0 pin of "
            "requirements.txt",
        ),
    ],
)
def test_create_names_the_zone_images_when_the_pinned_one_is_missing(
    offered, tpu_type, message, fake_cloud
):
    env, state = fake_cloud
    env = dict(env, FAKE_VERSIONS="\n".join(offered))
    for extra in ([], ["--spot"]):
        (state / "calls.log").unlink(missing_ok=True)
        res = run(
            "create_tpu.sh", "--name=trm", "--zone=us-central2-b", f"--type={tpu_type}", *extra,
            env=env,
        )  # fmt: skip
        assert res.returncode == 1
        (line,) = res.stderr.splitlines()
        assert line.startswith("error: " + message), line
        calls = (state / "calls.log").read_text()
        assert "versions list" in calls and " create " not in calls


# --- 8. A held run.lock in a batch: said why, waited for, relaunched ---------------------------------


def test_run_batch_waits_for_a_held_lock_and_relaunches(fake_cloud):
    env, state = fake_cloud
    lock = state / "gcs" / "bkt" / "runs" / "e1" / "run.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps({"host": "t1v-old-w-0", "pid": 4242, "heartbeat": time.time() - 300})
    )
    # e1's first launch finds the lock held (exit 8), e2 runs, e1 is launched again and finishes.
    (state / "plan").write_text("- 8\nfinished 0\nfinished 0\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--data_dir=gs://bkt/tfds", "--tpu_address=grpc://10.0.0.2:8470", "--poll_seconds=0",
        "--lock_wait=0", "configs/e1.py", "configs/e2.py", env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    header, rows = batch_summary(res.stdout)
    assert header == "=== run_batch summary (2 experiments, 0 not finished)"
    assert rows == [("e1", "lock held (wait 1/6)"), ("e1", "ok"), ("e2", "ok")]
    (why,) = [x for x in res.stderr.splitlines() if "exit 8" in x]
    assert "gs://bkt/runs/e1/run.lock is held by pid 4242 on t1v-old-w-0 (last heartbeat 30" in why
    assert "taken over, once its heartbeat is older than the trainer's timeout (600 s)" in why
    assert "launching again in 0 (wait 1/6)" in why
    # The lock wait is no launch attempt: e1 started with launch 1/3 twice.
    assert res.stderr.count("e1: starting in gs://bkt/runs/e1 (launch 1/3") == 2


def test_run_batch_gives_up_after_max_lock_waits(fake_cloud):
    env, state = fake_cloud
    (state / "plan").write_text("- 8\n- 8\n- 8\n")
    res = run(
        "run_batch.sh", "--name=trm", "--zone=z", "--workdir_root=gs://bkt/runs",
        "--data_dir=gs://bkt/tfds", "--tpu_address=local", "--poll_seconds=0", "--lock_wait=0",
        "--max_lock_waits=2", "configs/e1.py", env=env,
    )  # fmt: skip
    assert res.returncode == 1
    assert batch_summary(res.stdout)[1] == [
        ("e1", "lock held (wait 1/2)"),
        ("e1", "lock held (wait 2/2)"),
        ("e1", "FAILED (exit 8: workdir in use: run.lock held)"),
    ]
    assert "held by an unreadable lock" in res.stderr  # no run.lock to read in this fake bucket


# --- 2. and 3. The --tpu value of a command typed on worker 0 ----------------------------------------


def test_tpu_address_prints_the_hosts_for_launch_py(fake_cloud):
    env, state = fake_cloud
    res = run("tpu_address.sh", "--name=trm", "--zone=us-central2-b", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "grpc://10.0.0.2:8470,grpc://10.0.0.3:8470\n"
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[1] == (
        "compute tpus tpu-vm describe trm --zone=us-central2-b '--format=value(acceleratorType)' "
        "--quiet"
    )
    res = run("tpu_address.sh", "--name=trm", "--zone=z", env=dict(env, FAKE_TYPE="v4-8"))
    assert res.stdout == "local\n"


FAKE_TF = """import json, os, sys
json.dump({k: os.environ.get(k) for k in ("TPU_LOAD_LIBRARY", "KERAS_BACKEND")},
          open(os.environ["RECORD"], "w"))
sys.exit(0)
"""


@pytest.mark.parametrize(
    "args,load_library",
    [
        (["--tpu=grpc://127.0.0.1:1,grpc://127.0.0.2:1"], "0"),
        (["--tpu", "grpc://127.0.0.1:1"], "0"),
        (["--tpu=local"], None),
        ([], None),
        (["--tpu=grpc://127.0.0.1:1", "--tpu=local"], None),  # absl: the last one wins
    ],
)
def test_launch_sets_tpu_load_library_before_importing_tensorflow(args, load_library, tmp_path):
    """launch.py run with a stand-in `tensorflow` that records the environment at its import."""
    fake = tmp_path / "fake_tf" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_TF)
    record = tmp_path / "env.json"
    env = {k: v for k, v in os.environ.items() if k != "TPU_LOAD_LIBRARY"}
    env.update(PYTHONPATH=f"{fake.parent}{os.pathsep}{REPO}", RECORD=str(record))
    res = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/quickstart.py", "--workdir=gs://b/w", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(record.read_text()) == {
        "TPU_LOAD_LIBRARY": load_library,
        "KERAS_BACKEND": "tensorflow",
    }


def _pre_import_functions(path: str) -> dict:
    """launch.py's `_tpu_argument` and `_set_environment`, compiled from its source alone."""
    import ast  # noqa: PLC0415

    tree = ast.parse(open(path).read())
    keep = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name in ("_tpu_argument", "_set_environment")
    ]
    assert len(keep) == 2
    namespace = {"os": os}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), namespace)
    return namespace


def test_a_bare_tpu_name_is_refused_in_one_line():
    from trm_tf import distribute  # noqa: PLC0415  (imports TensorFlow)

    for ok in ("", "local", " grpc://10.0.0.2:8470 ", "grpc://10.0.0.2:8470,grpc://10.0.0.3:8470"):
        distribute.require_tpu_address(ok)
    for name in ("trm-v4-32", "projects/p/locations/z/nodes/trm", "grpc://10.0.0.2:8470,trm"):
        with pytest.raises(distribute.TPUNameError) as e:
            distribute.require_tpu_address(name)
        (line,) = str(e.value).splitlines()
        assert "needs the Cloud TPU API client this project does not install" in line
        assert "--tpu=$(scripts/tpu_address.sh --name=" in line and "scripts/launch_pod.sh" in line
        # The trainer's resolver (also check_tpu.py's) refuses it before TensorFlow sees it.
        with pytest.raises(distribute.TPUNameError):
            distribute.tpu_resolver(name)
    # launch.py's pre-import rule is distribute.drives_remote_hosts'. Only its two pre-import functions
    # are taken (importing launch.py would define its absl flags in this test process).
    launch = _pre_import_functions(os.path.join(str(REPO), "launch.py"))
    for tpu in ("", "local", " local ", "grpc://10.0.0.2:8470", "grpc://a:1,grpc://b:1"):
        env = {}
        launch["_set_environment"]([f"--tpu={tpu}"], env)
        assert (env.get("TPU_LOAD_LIBRARY") == "0") == distribute.drives_remote_hosts(tpu), tpu
