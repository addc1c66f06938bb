"""TensorBoard starts in this environment and serves the Scalars and Profile tabs.

TensorBoard 2.20 imports `pkg_resources`, which setuptools 81 and later no longer ship, so an environment
that drifts past the `setuptools` bound of requirements.txt has no working `tensorboard` command (the
README's `tensorboard --logdir=…`, BUILD.md's profiler section, scripts/tensorboard.sh).
"""

import gzip
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata

import tensorflow as tf
from packaging.requirements import Requirement

from tests.testing.launch import free_ports

REPO = pathlib.Path(__file__).resolve().parents[1]


def pinned(name: str) -> Requirement:
    """The requirement line of `name` in requirements.txt."""
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-") and Requirement(line).name == name:
            return Requirement(line)
    raise AssertionError(f"{name} is not in requirements.txt")


def test_installed_setuptools_satisfies_the_pin_and_provides_pkg_resources():
    req = pinned("setuptools")
    assert req.specifier, "setuptools needs an upper bound (TensorBoard imports pkg_resources)"
    assert metadata.version("setuptools") in req.specifier, (metadata.version("setuptools"), req)
    # What `tensorboard` imports first; a fresh interpreter, as the command has.
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import pkg_resources"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def _get(url: str, timeout: float = 10.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            if r.status != 200:
                return None
            body = r.read()
            return gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _write_run(logdir: pathlib.Path) -> None:
    """A run with one scalar and one profile (a profiler trace of a few ops)."""
    run = str(logdir / "run")
    with tf.summary.create_file_writer(os.path.join(run, "train")).as_default():
        tf.summary.scalar("loss", 1.0, step=1)
    tf.profiler.experimental.start(run)
    with tf.profiler.experimental.Trace("train", step_num=1, _r=1):
        tf.reduce_sum(tf.matmul(tf.ones([64, 64]), tf.ones([64, 64]))).numpy()
    tf.profiler.experimental.stop()
    assert tf.io.gfile.glob(os.path.join(run, "plugins", "profile", "*", "*.xplane.pb"))


def test_tensorboard_starts_and_serves_scalars_and_profile(tmp_path):
    _write_run(tmp_path)
    # The `tensorboard` console script of this environment, as the README runs it; loopback only.
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert os.path.exists(exe), exe
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen(
        [exe, f"--logdir={tmp_path}", f"--port={port}", "--host=127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        listing = None
        deadline = time.time() + 120
        while listing is None and proc.poll() is None and time.time() < deadline:
            listing = _get(f"{base}/data/plugins_listing")
            if listing is None:
                time.sleep(0.5)
        assert listing is not None, (tmp_path / "tensorboard.log").read_text()[-3000:]
        plugins = json.loads(listing)
        for name in ("scalars", "profile"):
            assert name in plugins and plugins[name]["enabled"], (name, plugins.get(name))
        # The Profile tab lists the run's profile.
        runs = json.loads(_get(f"{base}/data/plugin/profile/runs") or b"[]")
        assert any(r.startswith("run") for r in runs), runs
        tags = json.loads(_get(f"{base}/data/plugin/scalars/tags") or b"{}")
        assert "loss" in tags.get("run/train", {}), tags
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
