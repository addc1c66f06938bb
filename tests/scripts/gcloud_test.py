"""Tests of the Cloud TPU operation scripts: what every script does without gcloud, or with a gcloud that is not authenticated.

No network and no real gcloud (see conftest.py).
"""

import pytest

from tests.testing.scripts import (
    run,
)


@pytest.mark.parametrize(
    "script,args",
    [
        ("create_tpu.sh", ["--name=t", "--zone=z", "--type=v4-8"]),
        ("delete_tpu.sh", ["--name=t", "--zone=z"]),
        ("setup_workers.sh", ["--name=t", "--zone=z"]),
        (
            "launch_pod.sh",
            [
                "--name=t",
                "--zone=z",
                "--config=c.py",
                "--workdir=gs://b/r",
                "--data_dir=gs://b/tfds",
            ],
        ),
        (
            "run_batch.sh",
            ["--name=t", "--zone=z", "--workdir_root=gs://b/r", "--data_dir=gs://b/tfds", "c.py"],
        ),
        ("tpu_address.sh", ["--name=t", "--zone=z"]),
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
