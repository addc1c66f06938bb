"""TensorBoard starts in this environment and serves the Scalars and Profile tabs.

TensorBoard 2.20 imports `pkg_resources`, which setuptools 81 and later no longer ship, so an environment
that drifts past the `setuptools` bound of requirements.txt has no working `tensorboard` command (the
README's `tensorboard --logdir=…`, BUILD.md's profiler section, scripts/tensorboard.sh).
"""

import contextlib
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

import pytest
import tensorflow as tf
from packaging.requirements import Requirement

from configs import args as config_args
from tests.testing.launch import free_ports
from trm_tf.summaries import MetricWriter, hparams_of

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


@contextlib.contextmanager
def _serve(logdir: pathlib.Path):
    """The `tensorboard` console script of this environment, as the README runs it, on loopback; yields
    its base URL once the plugin listing answers."""
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert os.path.exists(exe), exe
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    log_path = logdir / "tensorboard.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [exe, f"--logdir={logdir}", f"--port={port}", "--host=127.0.0.1"],
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
        assert listing is not None, log_path.read_text()[-3000:]
        yield base, json.loads(listing)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_tensorboard_starts_and_serves_scalars_and_profile(tmp_path):
    _write_run(tmp_path)
    with _serve(tmp_path) as (base, plugins):
        for name in ("scalars", "profile"):
            assert name in plugins and plugins[name]["enabled"], (name, plugins.get(name))
        # The Profile tab lists the run's profile.
        runs = json.loads(_get(f"{base}/data/plugin/profile/runs") or b"[]")
        assert any(r.startswith("run") for r in runs), runs
        tags = json.loads(_get(f"{base}/data/plugin/scalars/tags") or b"{}")
        assert "loss" in tags.get("run/train", {}), tags


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        if r.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return json.loads(data)


def test_hparams_tab_lists_every_run_with_its_hyperparameters_and_outcome(tmp_path):
    """Two runs of a sweep written by `MetricWriter` (hparams at the start, eval scalars, the final/best
    outcome at the end): the HParams plugin lists both sessions with their seed, EMA flag and metrics."""
    for seed, ema, accs in ((0, True, (0.5, 0.7, 0.6)), (1, False, (0.2, 0.3, 0.4))):
        config = config_args.build(None)
        config.seed, config.optim.ema = seed, ema
        name = f"e2_1-seed{seed}"
        writer = MetricWriter(str(tmp_path / name))
        writer.write_hparams(hparams_of(config), name, 1.7e9)
        history = []
        for k, acc in enumerate(accs):
            writer.write("eval", 100 * (k + 1), {"exact_accuracy": acc})
            history.append({"step": 100 * (k + 1), "full": k == 2, "exact_accuracy": acc})
        writer.write_outcome(300, {"history": history})
        writer.close()
    with _serve(tmp_path) as (base, plugins):
        assert plugins["hparams"]["enabled"], plugins.get("hparams")
        url = f"{base}/data/plugin/hparams"
        exp = _post(f"{url}/experiment", {"experimentName": ""})
        names = {h["name"] for h in exp["hparamInfos"]}
        assert {"seed", "optim.ema", "model.hidden_size", "experiment_id"} <= names, names
        metrics = {(m["name"].get("group", ""), m["name"]["tag"]) for m in exp["metricInfos"]}
        assert {("", "final/exact_accuracy"), ("", "best/exact_accuracy")} <= metrics, metrics
        assert ("eval", "exact_accuracy") in metrics, metrics
        groups = _post(
            f"{url}/session_groups",
            {"startIndex": 0, "sliceSize": 10, "allowedStatuses": ["STATUS_UNKNOWN"]},
        )["sessionGroups"]
        by_seed = {int(g["hparams"]["seed"]): g for g in groups}
        assert sorted(by_seed) == [0, 1], groups
        assert by_seed[0]["hparams"]["optim.ema"] is True
        assert by_seed[1]["hparams"]["optim.ema"] is False

        def value(group, tag):
            return next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == tag)

        assert value(by_seed[0], "final/exact_accuracy") == pytest.approx(0.6)
        assert value(by_seed[0], "best/exact_accuracy") == pytest.approx(0.7)
        assert value(by_seed[1], "best/exact_accuracy") == pytest.approx(0.4)
