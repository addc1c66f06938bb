"""A tiny TRM on real ARC tasks through launch.py, scored by the pass@K voting evaluator: the pass@K the
run reports (this checkpoint's and pooled over the run) and its submission are recomputed from the votes
it stored in the run directory and the ground truth."""

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.testing.launch import REPO, TINY_ARC, overrides, tiny_run_cmd
from tests.testing.tiny_datasets import build_tiny_arc
from trm_tf.evaluators import arc_votes

# End to end: builds an ARC dataset and trains and evaluates through a launch.py process.
pytestmark = pytest.mark.slow


def test_launch_trains_and_scores_arc_with_voting(tmp_path):
    data_dir = str(tmp_path / "tfds")
    # 3 real tasks per subset (tfds_builders/arc_agi/dummy_data), 10 augmentations, ARC-AGI-1 routing.
    spec = build_tiny_arc(data_dir)
    assert spec.seq_len == 900 and spec.vocab_size == 12 and spec.num_puzzle_identifiers > 3
    workdir = str(tmp_path / "run")
    cmd = tiny_run_cmd(
        data_dir,
        workdir,
        *overrides(TINY_ARC),
        "--config.train.global_batch_size=8",
        "--config.train.total_steps=4",
        "--config.train.steps_per_loop=2",
        "--config.train.log_every_steps=2",
        "--config.train.eval_every_steps=2",
        "--config.eval.arc_subset_tasks=2",
        "--config.eval.subset_size=-1",
        "--config.eval.final_full=True",
        dataset=spec.name,
    )
    out = subprocess.run(
        cmd, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "eval_results.json")))
    periodic, final = results["history"]
    truth = arc_votes.load_ground_truth(tfds.builder(spec.name, data_dir=data_dir).data_dir)
    votes = {s: _votes(workdir, s) for s in (2, 4)}
    # Step 2 scored the task-complete subset: two tasks, every augmented row of them.
    subset = sorted({task for task, _ in votes[2]})
    assert periodic["step"] == 2 and not periodic["full"] and periodic["ARC/num_tasks"] == 2
    assert len(subset) == 2 and periodic["num_examples"] == sum(
        sum(c for c, _ in votes[2][key].values()) for key in votes[2]
    )
    assert final["step"] == 4 and final["full"] and final["ARC/num_tasks"] == len(truth) == 3
    assert final["num_examples"] == spec.num_test_examples  # every augmented test row scored once
    assert final["ARC/input_mismatches"] == 0  # inverse transforms agree across augmented copies
    sub_truth = {t: truth[t] for t in subset}
    for k in (1, 2, 5, 1000):
        assert periodic[f"ARC/pass@{k}"] == pytest.approx(_pass_at(votes[2], sub_truth, k))
        assert final[f"ARC/pass@{k}"] == pytest.approx(_pass_at(votes[4], truth, k))
        pooled = _pass_at(_merged(votes[2], votes[4]), truth, k)
        assert final[f"ARC/pooled/pass@{k}"] == pytest.approx(pooled)
    assert final["ARC/pooled/num_evaluations"] == 2
    # The evaluation's log line leads with the paper's quantity, the pooled pass@2.
    line = next(x for x in out.stderr.splitlines() if "eval @ step 4 " in x)
    assert (
        f"examples): ARC/pooled/pass@2 {final['ARC/pooled/pass@2']:.4f} (votes of 2 evaluations"
        in line
    ), line
    assert (
        f"ARC/pass@2 {final['ARC/pass@2']:.4f} (this checkpoint) over 3 tasks; exact_accuracy"
        in line
    )
    sub = json.load(open(os.path.join(workdir, "submission_step4.json")))
    assert sorted(sub) == sorted(truth)
    for task, attempts in sub.items():
        assert len(attempts) == len(truth[task])  # one entry per test pair
        for idx, attempt in enumerate(attempts):
            best = _ranked(votes[4].get((task, idx), {}))[:2] or ["0"]
            best += best[:1] * (2 - len(best))
            assert [attempt["attempt_1"], attempt["attempt_2"]] == [
                arc_votes.key_grid(g) for g in best
            ]


def _votes(workdir, step):
    """The stored votes of one evaluation: (task, pair) -> {grid text: (count, q sum)}."""
    path = os.path.join(workdir, "arc_votes", f"step_{step}", "votes.json")
    state = json.load(open(path))
    return {
        (task, idx): {g: tuple(v) for g, v in preds.items()} for task, idx, preds in state["votes"]
    }


def _merged(*evaluations):
    out = {}
    for votes in evaluations:
        for key, preds in votes.items():
            for grid, (count, qsum) in preds.items():
                c, q = out.setdefault(key, {}).get(grid, (0, 0.0))
                out[key][grid] = (c + count, q + qsum)
    return out


def _ranked(preds):
    """Grid texts by vote count, then mean confidence, then text."""
    return [
        g for g, _ in sorted(preds.items(), key=lambda kv: (-kv[1][0], -kv[1][1] / kv[1][0], kv[0]))
    ]


def _pass_at(votes, truth, k):
    """Mean over tasks of the fraction of test pairs whose true output is among the top k."""
    per_task = []
    for task, outputs in truth.items():
        hits = [
            arc_votes.grid_key(np.asarray(out)) in _ranked(votes.get((task, i), {}))[:k]
            for i, out in enumerate(outputs)
        ]
        per_task.append(sum(hits) / len(outputs))
    return sum(per_task) / len(per_task)
