"""The best checkpoint and early stopping (`trm_tf.best`): decisions, records and patience with a fake
checkpoint store, then end to end through launch.py: `workdir/best` holds the best evaluation's state bit
for bit (weights and carry), `--mode=eval --checkpoint=best` evaluates it, and early stopping ends the run
as finished with its reason and trains no more on a relaunch."""

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from configs import args as config_args
from tests.testing.launch import REPO, launch_cmd
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf.best import BestCheckpoint, headline_metric


class FakeCkpt:
    def __init__(self):
        self.saved = []

    def save_best(self, step):
        self.saved.append(step)

    def best_step(self):
        return self.saved[-1] if self.saved else None


class FakeRunDir:
    def __init__(self):
        self.summary = {}

    def update_summary(self, **fields):
        self.summary.update(fields)


def _config(**eval_fields):
    c = config_args.build(None)
    for k, v in eval_fields.items():
        if k == "early_stop_evals":
            c.train.early_stop_evals = v
        else:
            c.eval[k] = v
    return c


def test_headline_metric_of_each_task():
    assert headline_metric(_config()) == "exact_accuracy"
    assert headline_metric(_config(evaluators=("accuracy", "arc"))) == "ARC/pass@2"
    assert headline_metric(_config(best_metric="lm_loss")) == "lm_loss"


def test_best_is_kept_on_improvement_only_and_patience_counts_evaluations():
    ckpt, rundir = FakeCkpt(), FakeRunDir()
    best = BestCheckpoint(_config(early_stop_evals=2), ckpt, rundir, tf.distribute.get_strategy())
    for step, acc in ((100, 0.2), (200, 0.5), (300, 0.5), (400, 0.4)):
        best(step, {"exact_accuracy": acc, "num_examples": 64}, full=step == 400)
    assert ckpt.saved == [100, 200]  # an equal value is no improvement
    record = rundir.summary["best"]
    assert record == {
        "metric": "exact_accuracy",
        "value": 0.5,
        "step": 200,
        "mode": "max",
        "full": False,
        "num_examples": 64,
        "evaluations_since": 2,
    }
    assert best.stop_requested()
    # Losses are minimised; a run that resumes keeps its record while its best checkpoint exists.
    loss = BestCheckpoint(
        _config(best_metric="lm_loss"),
        ckpt,
        FakeRunDir(),
        tf.distribute.get_strategy(),
        {"best": {}},
    )
    assert (
        loss(500, {"lm_loss": 2.0})
        and not loss(600, {"lm_loss": 2.5})
        and loss(700, {"lm_loss": 1.0})
    )
    resumed = BestCheckpoint(
        _config(),
        ckpt,
        FakeRunDir(),
        tf.distribute.get_strategy(),
        {"best": {"step": 700, "value": 0.9}},
    )
    assert resumed.record["value"] == 0.9
    stale = BestCheckpoint(
        _config(),
        ckpt,
        FakeRunDir(),
        tf.distribute.get_strategy(),
        {"best": {"step": 1, "value": 0.9}},
    )
    assert stale.record == {}


def test_a_metric_the_evaluation_lacks_is_warned_once_and_saves_nothing():
    ckpt, rundir = FakeCkpt(), FakeRunDir()
    best = BestCheckpoint(_config(best_metric="nope"), ckpt, rundir, tf.distribute.get_strategy())
    assert not best(100, {"exact_accuracy": 0.1})
    assert ckpt.saved == [] and "best" not in rundir.summary and not best.stop_requested()


def _arrays(path):
    reader = tf.train.load_checkpoint(path)
    names = [n for n, _ in tf.train.list_variables(path) if "OPTIMIZER_SLOT" not in n]
    return {n: reader.get_tensor(n) for n in names if "save_counter" not in n}


@pytest.mark.slow  # launch.py subprocesses
def test_best_checkpoint_restores_exactly_and_early_stop_finishes_the_run(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    env = dict(os.environ, PYTHONPATH=REPO)
    run = str(tmp_path / "run")
    # num_examples is the same in every periodic (subset) evaluation: the first is the best, and with
    # early_stop_evals=1 the run stops after the second, at step 8 of 16.
    flags = (
        "--config.train.total_steps=16",
        "--config.train.eval_every_steps=4",
        "--config.train.max_checkpoints=10",
        "--config.eval.best_metric=num_examples",
        "--config.train.early_stop_evals=1",
    )
    out = subprocess.run(launch_cmd(data_dir, run, *flags), env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.load(open(os.path.join(run, "run_summary.json")))
    assert summary["status"] == "finished" and summary["stop_reason"] == "early_stop"
    assert summary["step"] == 8
    best = summary["best"]
    assert (best["metric"], best["step"], best["mode"], best["full"]) == (
        "num_examples",
        4,
        "max",
        False,
    )
    history = json.load(open(os.path.join(run, "eval_results.json")))["history"]
    assert [h["step"] for h in history] == [
        4,
        8,
        8,
    ]  # periodic at 4 and 8, the final one at the stop
    # The best checkpoint is the state at step 4, bit for bit: weights, EMA, optimizer, carry.
    ckpts = os.path.join(run, "checkpoints")
    assert sorted(os.listdir(os.path.join(run, "best"))) == [
        "carry-4.host0.npz",
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
    ]
    a, b = _arrays(os.path.join(run, "best", "ckpt-4")), _arrays(os.path.join(ckpts, "ckpt-4"))
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with (
        open(os.path.join(run, "best", "carry-4.host0.npz"), "rb") as f,
        open(os.path.join(ckpts, "carry-4.host0.npz"), "rb") as g,
    ):
        assert f.read() == g.read()
    assert os.path.exists(os.path.join(ckpts, "ckpt-8.index"))  # the stop step was saved

    # A relaunch trains no more; --mode=eval --checkpoint=best evaluates step 4.
    again = subprocess.run(
        launch_cmd(data_dir, run, *flags), env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.load(open(os.path.join(run, "run_summary.json")))["step"] == 8
    ev = subprocess.run(
        launch_cmd(data_dir, run, *flags, "--mode=eval", "--checkpoint=best"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    results = json.load(open(os.path.join(run, "eval_results.json")))
    assert results["best"]["step"] == 4 and results["best"]["full"] is True
    bad = subprocess.run(
        launch_cmd(data_dir, run, *flags, "--checkpoint=best"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "--checkpoint=best needs --mode=eval" in bad.stderr
