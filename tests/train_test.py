"""Trainer end to end: launch.py flags and outputs, exact resume after a real kill, NaN guard, Mirrored parity."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import REPO, launch_cmd, small_config, weights_of
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import train
from trm_tf.actions import NonFiniteLossError
from trm_tf.trainer import Trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    build_tiny_sudoku(d)
    return d


@pytest.mark.slow  # launch.py subprocesses
def test_launch_outputs_and_exact_resume_after_kill(data_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    # Uninterrupted reference run: 16 steps, evaluations at 8 and 16.
    ref = str(tmp_path / "ref")
    args = ("--config.train.total_steps=16", "--config.train.eval_every_steps=8")
    subprocess.run(
        launch_cmd(data_dir, ref, *args),
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    for f in ("config.json", "metrics.jsonl", "run_summary.json", "eval_results.json"):
        assert os.path.exists(os.path.join(ref, f)), f
    cfg = json.load(open(os.path.join(ref, "config.json")))
    assert cfg["model"]["hidden_size"] == 32 and cfg["train"]["total_steps"] == 16
    summary = json.load(open(os.path.join(ref, "run_summary.json")))
    assert summary["status"] == "finished" and summary["step"] == 16
    lines = [json.loads(x) for x in open(os.path.join(ref, "metrics.jsonl"))]
    assert [r["step"] for r in lines if r["split"] == "train"] == [4, 8, 12, 16]
    assert [r["step"] for r in lines if r["split"] == "eval"] == [8, 16]
    results = json.load(open(os.path.join(ref, "eval_results.json")))
    assert results["latest"]["step"] == 16 and results["latest"]["num_examples"] == 16
    assert "exact_accuracy/step_3" in results["latest"]
    assert all(np.isfinite(r["loss"]) for r in lines if r["split"] == "train")
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(ref, "train")))
    # The HParams session at the workdir root: hyperparameters at the start, final/best at the end.
    (root_events,) = [f for f in os.listdir(ref) if f.startswith("events.out.tfevents")]
    values = [
        v
        for e in tf.compat.v1.train.summary_iterator(os.path.join(ref, root_events))
        for v in e.summary.value
    ]
    assert [v.metadata.plugin_data.plugin_name for v in values[:1]] == ["hparams"]
    outcome = {v.tag: float(tf.make_ndarray(v.tensor)) for v in values[1:]}
    assert outcome["final/exact_accuracy"] == pytest.approx(results["latest"]["exact_accuracy"])
    assert "best/exact_accuracy" in outcome and "final/lm_loss" in outcome, sorted(outcome)

    # Interrupted run: killed (SIGKILL) after its first checkpoint, then restarted with the same command.
    run = str(tmp_path / "run")
    cmd = launch_cmd(data_dir, run, *args)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        ckpts = tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-*.index"))
        if any(int(os.path.basename(c)[5:-6]) >= 4 for c in ckpts) or proc.poll() is not None:
            break
        time.sleep(0.2)
    killed_early = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_early, "run finished before it could be killed"
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    a, b = weights_of(ref), weights_of(run)
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)


@pytest.mark.slow  # launch.py subprocesses
def test_bad_override_and_missing_dataset_fail_clearly(data_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    bad = subprocess.run(
        launch_cmd(data_dir, str(tmp_path / "x"), "--config.model.hiden_size=3"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "hidden_size" in bad.stderr  # "Did you mean"
    missing = subprocess.run(
        launch_cmd(str(tmp_path / "empty"), str(tmp_path / "y"), "--config.train.total_steps=4"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 3
    assert "tfds build tfds_builders/sudoku_extreme --config=pipeline_test" in missing.stderr


@pytest.mark.slow  # trains until the guard trips
def test_nan_guard_stops_without_overwriting_checkpoint(data_dir, tmp_path):
    c = small_config(data_dir, total_steps=8, profile_start_step=4, profile_num_steps=2)
    workdir = str(tmp_path / "ok")
    train.run(c, workdir, tf.distribute.get_strategy(), mode="train")
    # The configured profiler window left a trace that TensorBoard's Profile tab reads.
    assert tf.io.gfile.glob(os.path.join(workdir, "plugins", "profile", "*", "*.xplane.pb"))
    c.train.profile_start_step = -1
    c.train.total_steps = 16
    c.optim.lr = 1e20  # decay factor (1 - lr * wd) overflows the weights to inf
    c.optim.weight_decay = 1e20
    with pytest.raises(NonFiniteLossError, match="steps 9-12"):
        train.run(c, workdir, tf.distribute.get_strategy(), mode="train")
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-8")


def _train_state(strategy, c, spec, steps):
    from trm_tf.data import input_pipeline

    trainer = Trainer(c, strategy, spec, total_steps=steps)
    it = iter(input_pipeline.distribute_train(strategy, spec, c.train.global_batch_size, c.seed))
    trainer.train_loop(it, steps)
    # Keras variable paths carry per-instance suffixes: key by position instead.
    state = {f"w{i}": v.numpy() for i, v in enumerate(trainer.model.trainable_variables)}
    state.update({f"ema/{i}": s.numpy() for i, s in enumerate(trainer.ema.shadows)})
    state["puzzle_emb"] = trainer.model.puzzle_emb.numpy()
    carry = trainer.carry.local_values(strategy)
    state["carry_steps"] = np.concatenate(list(carry["steps"]))
    state["carry_halted"] = np.concatenate(list(carry["halted"]))
    metrics = trainer.read_metrics(steps)
    return state, metrics


def test_resolve_jit_compile():
    import ml_collections

    from trm_tf.distribute import resolve_jit_compile

    cpu = tf.distribute.get_strategy()
    att, mlp = (
        ml_collections.ConfigDict({"mlp_t": False}),
        ml_collections.ConfigDict({"mlp_t": True}),
    )
    # "auto": oneDNN (no XLA) for attention on CPU, XLA for MLP-T in float32 only: oneDNN's bf16 dots
    # use the matrix units and XLA:CPU emulates float16.
    assert resolve_jit_compile("auto", cpu, att) is False
    assert resolve_jit_compile("auto", cpu, mlp) is True
    for dtype, want in (("float32", True), ("bfloat16", False), ("float16", False)):
        low = ml_collections.ConfigDict({"mlp_t": True, "forward_dtype": dtype})
        assert resolve_jit_compile("auto", cpu, low) is want

    # A strategy's devices decide (stand-ins, so TPU and GPU device lists are covered on this CPU).
    class Devices:
        def __init__(self, *devices):
            self.extended = type("Extended", (), {"worker_devices": devices})()

    assert resolve_jit_compile("auto", Devices("/cpu:0", "/cpu:1"), att) is False
    assert resolve_jit_compile("auto", Devices("/job:worker/task:0/device:TPU:0"), att) is True
    bf16 = ml_collections.ConfigDict({"mlp_t": True, "forward_dtype": "bfloat16"})
    assert resolve_jit_compile("auto", Devices("/job:worker/task:0/device:TPU:0"), bf16) is True
    assert resolve_jit_compile("auto", Devices("/gpu:0", "/gpu:1"), att) is True
    for v in (True, "true", "True", "1", "on"):
        assert resolve_jit_compile(v, cpu, att) is True
    for v in (False, "false", "FALSE", "0", "off"):
        assert resolve_jit_compile(v, cpu, mlp) is False
    with pytest.raises(ValueError, match="runtime.jit_compile"):
        resolve_jit_compile("sometimes", cpu, mlp)


@pytest.mark.slow  # trains the same run twice (one and two replicas)
def test_mirrored_two_replicas_equal_single_device(data_dir):
    from trm_tf.data import datasets

    spec = datasets.load_spec("sudoku_extreme/pipeline_test", data_dir)
    c = small_config(data_dir)
    c.act.halt_max_steps = 2  # slots halt and reload within the run
    c.runtime.jit_compile = "true"
    single, m1 = _train_state(tf.distribute.get_strategy(), c, spec, 5)
    mirrored, m2 = _train_state(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), c, spec, 5)
    assert single.keys() == mirrored.keys()
    for k in single:
        np.testing.assert_allclose(single[k], mirrored[k], rtol=1e-4, atol=2e-5, err_msg=k)
    assert np.any(single["puzzle_emb"] != 0)  # sign-SGD really updated the shared row
    for k in ("loss", "lm_loss", "accuracy", "exact_accuracy", "steps", "halted_examples"):
        assert m1[k] == pytest.approx(m2[k], rel=1e-4, abs=1e-6), k


@pytest.mark.slow  # launch.py subprocesses
def test_sigterm_saves_and_restart_continues(data_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    run = str(tmp_path / "pre")
    cmd = launch_cmd(data_dir, run, "--config.train.total_steps=400", "--mode=train")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if tf.io.gfile.glob(os.path.join(run, "checkpoints", "ckpt-*.index")):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # what a TPU VM preemption sends
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.load(open(os.path.join(run, "run_summary.json")))
    assert summary["status"] == "preempted" and 0 < summary["step"] < 400
    latest = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    assert latest.endswith(f"ckpt-{summary['step']}")  # saved at the step it stopped
    out = subprocess.run(
        launch_cmd(
            data_dir, run, f"--config.train.total_steps={summary['step'] + 4}", "--mode=train"
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0
    assert f"start at step {summary['step']}" in out.stderr
