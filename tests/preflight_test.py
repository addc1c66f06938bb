"""trm_tf.preflight's checks that need no slice: the hosts' runtime version against the client's TensorFlow
(with fake TPU VM metadata and gcloud), and the host devices of the default strategy. The whole preflight
runs end to end in tests/pod_rehearsal_test.py."""

import importlib.metadata
import os
import stat

import pytest
import tensorflow as tf

from trm_tf import preflight

REMOTE = "grpc://10.0.0.1:8470,grpc://10.0.0.2:8470"
MINOR = ".".join(tf.__version__.split(".")[:2])
# What a v4-32's worker 0 reads from its metadata server (abridged).
TPU_ENV_TEXT = (
    "ACCELERATOR_TYPE: 'v4-32'\n"
    "NODE_ID: 'trm-pod'\n"
    f"RUNTIME_VERSION: 'tpu-vm-tf-{tf.__version__}-pod-pjrt'\n"
    "WORKER_ID: '0'\n"
    "ZONE: 'us-central2-b'\n"
)


def _env(**over):
    env = {"NODE_ID": "trm-pod", "ZONE": "us-central2-b", "ACCELERATOR_TYPE": "v4-32"}
    env.update(over)
    return lambda: env


@pytest.fixture
def no_libtpu(monkeypatch):
    """The pod client, as launch_pod.sh runs it: no libtpu package in its environment."""
    real = importlib.metadata.version

    def version(name):
        if name == "libtpu":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_versions_compares_the_hosts_runtime_with_the_client_tf(no_libtpu):
    asked = []

    def describe(name, zone):
        asked.append((name, zone))
        return f"tpu-vm-tf-{tf.__version__}-pod-pjrt"

    line = preflight.check_versions(True, REMOTE, env=_env(), describe=describe)
    assert asked == [("trm-pod", "us-central2-b")]  # the slice named by worker 0's metadata
    assert f"TF {tf.__version__}" in line
    assert (
        f"hosts run tpu-vm-tf-{tf.__version__}-pod-pjrt (TF {MINOR}, gcloud describe trm-pod)"
        in line
    )
    assert "libtpu" not in line  # the client never loads it


def test_versions_fails_in_one_line_on_another_minor_on_the_hosts(no_libtpu):
    with pytest.raises(RuntimeError) as e:
        preflight.check_versions(
            True, REMOTE, env=_env(), describe=lambda n, z: "tpu-vm-tf-2.15.0-pod-pjrt"
        )
    text = str(e.value)
    assert "\n" not in text
    assert f"the client runs TF {tf.__version__}" in text
    assert "hosts run tpu-vm-tf-2.15.0-pod-pjrt (TF 2.15" in text
    assert "--version=tpu-vm-tf-" in text and "-pod-pjrt" in text
    with pytest.raises(RuntimeError, match="has no TensorFlow TPU runtime"):
        preflight.check_versions(
            True, REMOTE, env=_env(), describe=lambda n, z: "tpu-ubuntu2204-base"
        )


def test_versions_falls_back_to_the_metadata_and_says_when_nothing_tells(no_libtpu):
    env = _env(RUNTIME_VERSION=f"tpu-vm-tf-{tf.__version__}-pod-pjrt")
    line = preflight.check_versions(True, REMOTE, env=env, describe=lambda n, z: None)
    assert f"(TF {MINOR}, TPU VM metadata)" in line
    with pytest.raises(RuntimeError, match="cannot tell which TensorFlow the TPU hosts run"):
        preflight.check_versions(True, REMOTE, env=dict, describe=lambda n, z: None)
    # A bare TPU name in --tpu is described directly.
    asked = []
    preflight.check_versions(
        True,
        "trm-other",
        env=_env(),
        describe=lambda n, z: asked.append(n) or f"tpu-vm-tf-{tf.__version__}-pod-pjrt",
    )
    assert asked == ["trm-other"]


def test_versions_on_cpu_and_single_host_tpu_need_no_hosts(no_libtpu):
    called = []
    line = preflight.check_versions(False, "", env=lambda: called.append(1) or {})
    assert line.startswith(f"TF {tf.__version__}") and not called
    with pytest.raises(RuntimeError, match="libtpu is not installed"):  # --tpu=local loads libtpu
        preflight.check_versions(True, "local", env=lambda: called.append(1) or {})
    assert not called


def test_describe_runs_gcloud_like_the_scripts_and_parses_the_metadata(tmp_path, monkeypatch):
    gcloud = tmp_path / "gcloud"
    gcloud.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/argv\necho tpu-vm-tf-{tf.__version__}-pod-pjrt\n'
    )
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert preflight.describe_runtime_version("trm-pod", "us-central2-b") == (
        f"tpu-vm-tf-{tf.__version__}-pod-pjrt"
    )
    assert (tmp_path / "argv").read_text().split() == [
        "compute", "tpus", "tpu-vm", "describe", "trm-pod", "--zone=us-central2-b",
        "--format=value(runtimeVersion)",
    ]  # fmt: skip
    gcloud.write_text("#!/bin/sh\nexit 1\n")
    assert preflight.describe_runtime_version("trm-pod", "us-central2-b") is None

    class Response:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return TPU_ENV_TEXT.encode()

    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", Response)
    env = preflight.tpu_vm_env()
    assert env["NODE_ID"] == "trm-pod" and env["ZONE"] == "us-central2-b"
    assert env["RUNTIME_VERSION"] == f"tpu-vm-tf-{tf.__version__}-pod-pjrt"
    assert preflight.runtime_tf_version(env["RUNTIME_VERSION"]) == MINOR
    assert preflight.runtime_tf_version("tpu-vm-tf-2.16.1-pjrt") == "2.16"


def test_host_devices_of_the_default_strategy():
    """The default strategy has no worker device list (it raised in the hosts and storage checks)."""
    strategy = tf.distribute.get_strategy()
    assert preflight.host_cpu_devices(strategy) == ["/device:CPU:0"]
    line = preflight._hosts_line(strategy, 0.0)
    assert line.startswith("1 host(s), 1 replicas on")


def test_describe_without_gcloud_says_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud anywhere
    assert preflight.describe_runtime_version("trm-pod", "us-central2-b") is None
