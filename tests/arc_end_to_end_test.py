"""A tiny TRM on real ARC tasks through launch.py, scored by the pass@K voting evaluator."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from tests.testing.launch import REPO
from trm_tf.data import datasets
from trm_tf.evaluators import arc

# End to end: builds an ARC dataset and trains and evaluates through a launch.py process.
pytestmark = pytest.mark.slow


def test_launch_trains_and_scores_arc_with_voting(tmp_path):
    data_dir = str(tmp_path / "tfds")
    # 3 real tasks per subset (tfds_builders/arc_agi/dummy_data), 10 augmentations, ARC-AGI-1 routing.
    spec = datasets.build_dataset(
        "arc_agi/arc1_aug10", data_dir, os.path.join(REPO, "tfds_builders", "arc_agi", "dummy_data")
    )
    assert spec.seq_len == 900 and spec.vocab_size == 12 and spec.num_puzzle_identifiers > 3
    workdir = str(tmp_path / "run")
    cmd = [
        sys.executable,
        os.path.join(REPO, "launch.py"),
        "--config=" + os.path.join(REPO, "configs", "quickstart.py") + ":runlocal",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.data.name=arc_agi",
        "--config.data.config=arc1_aug10",
        "--config.data.build_if_missing=False",
        "--config.eval.evaluator=arc",
        "--config.model.mlp_t=False",
        "--config.model.pos_encodings=rope",
        "--config.model.hidden_size=32",
        "--config.model.puzzle_emb_ndim=32",
        "--config.model.H_cycles=1",
        "--config.model.L_cycles=1",
        "--config.act.halt_max_steps=2",
        "--config.train.global_batch_size=8",
        "--config.train.total_steps=4",
        "--config.train.steps_per_loop=2",
        "--config.train.log_every_steps=2",
        "--config.train.eval_every_steps=100",
        "--config.eval.global_batch_size=16",
        "--config.eval.subset_size=-1",
        "--config.eval.final_full=True",
        "--config.optim.puzzle_emb_lr=1e-2",
    ]
    out = subprocess.run(
        cmd, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    latest = json.load(open(os.path.join(workdir, "eval_results.json")))["latest"]
    assert latest["num_examples"] == spec.num_test_examples  # every augmented test row scored once
    for k in (1, 2, 5, 10, 100, 1000):
        assert 0.0 <= latest[f"ARC/pass@{k}"] <= 1.0
    assert latest["ARC/pass@1"] <= latest["ARC/pass@2"] <= latest["ARC/pass@1000"]
    assert latest["ARC/input_mismatches"] == 0  # inverse transforms agree across augmented copies
    sub = json.load(open(os.path.join(workdir, "submission_step4.json")))
    truth = arc.load_ground_truth(tfds.builder(spec.name, data_dir=data_dir).data_dir)
    assert sorted(sub) == sorted(truth) and len(truth) == latest["ARC/num_tasks"] == 3
    for task, attempts in sub.items():
        assert len(attempts) == len(truth[task])  # one entry per test pair
        assert all(set(a) == {"attempt_1", "attempt_2"} for a in attempts)
