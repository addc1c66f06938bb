"""Fixtures of the tests of the Cloud TPU operation scripts (bash), without network or a real gcloud.

Every script runs with CLOUDSDK_CONFIG pointing at an empty temp folder, and, outside --dry-run,
with a stub `gcloud` first on PATH that records its arguments, so no real gcloud is ever called.
"""

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.testing.scripts import (
    FAKE_GCLOUD,
    FAKE_GSUTIL,
    FAKE_VERSIONS,
)


@pytest.fixture(scope="module")
def base_env(tmp_path_factory):
    """Environment with an empty gcloud config dir (no credentials reachable)."""
    env = dict(os.environ)
    env["CLOUDSDK_CONFIG"] = str(tmp_path_factory.mktemp("gcloud_config"))
    for var in ("TRM_TPU_NAME", "TRM_TPU_ZONE", "TRM_GCP_PROJECT"):
        env.pop(var, None)
    return env


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


@pytest.fixture()
def fake_cloud(tmp_path, base_env):
    """Fake gcloud + gsutil first on PATH (see FAKE_GCLOUD). Returns (env, state dir)."""
    state = tmp_path / "cloud"
    bindir = state / "bin"
    bindir.mkdir(parents=True)
    for name, text in (("gcloud", FAKE_GCLOUD), ("gsutil", FAKE_GSUTIL)):
        exe = bindir / name
        exe.write_text(text.format(python=sys.executable, versions=FAKE_VERSIONS))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = dict(base_env, FAKE_CLOUD=str(state))
    env["PATH"] = f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env, state
