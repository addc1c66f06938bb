"""ARC pass@K of one checkpoint and pooled over a run's evaluations (trm_tf/evaluators/arc_voting.py),
against votes counted by hand on real ARC-AGI tasks, the pool's resume through the run directory, and the
merge of two worker processes' votes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.testing.launch import REPO, free_ports
from tests.testing.tiny_datasets import ARC_DUMMY_DATA as DUMMY
from trm_tf.evaluators import arc
from trm_tf.evaluators.arc_voting import ARCVoting
from trm_tf.tasks import arc as arc_task
from trm_tf.tasks import grids
from trm_tf.workdir import RunDir

TRUTH = arc.load_ground_truth(str(DUMMY / "arc-agi_evaluation_solutions.json"))
INPUTS = {
    task: [pair["input"] for pair in value["test"]]
    for task, value in json.loads(
        (DUMMY / "arc-agi_evaluation_challenges.json").read_text()
    ).items()
}
A, B, C = sorted(TRUTH)  # real tasks with 1, 1 and 2 test pairs
W = [[9, 9, 9], [9, 9, 9]]  # a wrong answer (no true output of these tasks)
PERMS = [np.arange(10, dtype=np.uint8)] + [
    np.concatenate([[0], np.random.default_rng(i).permutation(np.arange(1, 10))]).astype(np.uint8)
    for i in range(7)
]


def _out(rows):
    """Eval-step outputs as ARCVoting.update gets them; rows: (task, test pair, predicted grid or
    "T" for the true output, q_halt logit). Row i is seen under transform i % 8 and colour map i % 8."""

    def enc(grid, i):
        return arc_task.encode_grid(grids.augment(np.asarray(grid, np.uint8), i % 8, PERMS[i % 8]))

    names = sorted(TRUTH)
    preds = [TRUTH[t][k] if g == "T" else g for t, k, g, _ in rows]
    return {
        "task_id": np.array([names.index(t) for t, *_ in rows], np.int32),
        "test_index": np.array([k for _, k, _, _ in rows], np.int32),
        "transform_id": np.array([i % 8 for i in range(len(rows))], np.int32),
        "color_map": np.stack([PERMS[i % 8] for i in range(len(rows))]),
        "inputs": np.stack([enc(INPUTS[t][k], i) for i, (t, k, _, _) in enumerate(rows)]),
        "preds": np.stack([enc(p, i) for i, p in enumerate(preds)]),
        "q_halt": np.array([q for *_, q in rows], np.float32),
        "mask": np.ones(len(rows), bool),
    }


# Three evaluations. Per (task, pair), votes as (grid: count) with every q logit 0 unless noted.
EVAL1 = [(A, 0, "T", 0), (A, 0, "T", 0), (A, 0, W, 0), (B, 0, W, 0), (C, 0, "T", 0), (C, 1, W, 0)]
# A flips to wrong; B becomes right (its one vote, q logit 3, beats the pooled wrong vote's q on the
# count tie); C pair 0 gets no votes, pair 1 two right ones.
EVAL2 = [(A, 0, W, 0)] * 3 + [(B, 0, "T", 3)] + [(C, 1, "T", 0)] * 2
# Scored over A and C only (a task subset); B's vote is pooled but not scored. A right again; C pair 0
# wrong three times (pooled: W 3 beats T 1), pair 1 unseen.
EVAL3 = [(A, 0, "T", 0)] * 3 + [(C, 0, W, 0)] * 3 + [(B, 0, W, 0)]


def _evaluate(voting, rows, step, scope=None):
    voting.scope = scope
    voting.begin()
    voting.update(_out(rows))
    metrics = {**voting.result(), **voting.pooled_result(step)}
    return metrics, voting.commit(step)


def test_single_and_pooled_pass_at_k_against_hand_counted_votes():
    voting = ARCVoting(TRUTH, num_aug=10)
    m1, _ = _evaluate(voting, EVAL1, 10)
    # A 1 (T 2 > W 1), B 0, C 1/2 (pair 0 right, pair 1 only W).
    assert m1["ARC/pass@1"] == m1["ARC/pooled/pass@1"] == pytest.approx(1.5 / 3)
    assert m1["ARC/pass@2"] == m1["ARC/pooled/pass@2"] == pytest.approx(1.5 / 3)
    assert m1["ARC/pooled/num_evaluations"] == 1 and m1["ARC/input_mismatches"] == 0

    m2, _ = _evaluate(voting, EVAL2, 20)
    # This checkpoint: A 0, B 1, C 1/2 (pair 0 unseen).
    assert m2["ARC/pass@1"] == m2["ARC/pass@2"] == pytest.approx(1.5 / 3)
    # Pooled: A W 4 > T 2 (pass@1 lost, pass@2 kept); B T wins the count tie on q; C pair 0 T 1 from
    # the first evaluation, pair 1 T 2 > W 1.
    assert m2["ARC/pooled/pass@1"] == pytest.approx(2 / 3)
    assert m2["ARC/pooled/pass@2"] == pytest.approx(3 / 3)
    assert m2["ARC/pooled/num_evaluations"] == 2

    m3, _ = _evaluate(voting, EVAL3, 30, scope=[A, C])
    assert m3["ARC/num_tasks"] == 2
    # This checkpoint: A 1, C 0 (pair 0 wrong, pair 1 unseen).
    assert m3["ARC/pass@1"] == m3["ARC/pass@2"] == pytest.approx(1 / 2)
    # Pooled: A T 5 > W 4; C pair 0 W 3 > T 1 (lost at K=1, kept at K=2), pair 1 T 2 > W 1.
    assert m3["ARC/pooled/pass@1"] == pytest.approx((1 + 0.5) / 2)
    assert m3["ARC/pooled/pass@2"] == pytest.approx(2 / 2)
    assert m3["ARC/pooled/num_evaluations"] == 3


def test_reevaluating_a_step_replaces_its_votes():
    voting = ARCVoting(TRUTH, num_aug=10)
    _evaluate(voting, EVAL1, 10)
    _evaluate(voting, EVAL2, 20)
    m, _ = _evaluate(voting, EVAL2, 20)  # `--mode=eval` on the checkpoint of step 20
    assert m["ARC/pooled/num_evaluations"] == 2
    assert m["ARC/pooled/pass@1"] == pytest.approx(2 / 3)  # as the first evaluation of step 20


def test_pool_resumes_from_the_run_directory(tmp_path):
    rundir = RunDir(str(tmp_path / "run"))
    voting = ARCVoting(TRUTH, num_aug=10)
    for rows, step in ((EVAL1, 10), (EVAL2, 20)):
        _, state = _evaluate(voting, rows, step)
        rundir.write_arc_votes(step, state)
    assert rundir.arc_vote_steps() == [10, 20]
    assert rundir.read_arc_votes(20)[20] == json.loads(json.dumps(voting.pool[20]))

    # Preempted after the evaluation of step 20 but before its checkpoint: resume from step 10.
    reader = RunDir(rundir.path, writer=False)
    assert reader.drop_arc_votes_after(10) == 0 and reader.arc_vote_steps() == [10, 20]
    assert rundir.drop_arc_votes_after(10) == 1 and rundir.arc_vote_steps() == [10]
    resumed = ARCVoting(TRUTH, num_aug=10)
    resumed.restore(rundir.read_arc_votes(10))
    m, state = _evaluate(resumed, EVAL3, 20)
    # Pooled = the first evaluation + this one: A T 5 > W 1; B W 2 only; C pair 0 W 3 > T 1, pair 1 W 1.
    assert m["ARC/pooled/num_evaluations"] == 2
    assert m["ARC/pooled/pass@1"] == pytest.approx(1 / 3)
    assert m["ARC/pooled/pass@2"] == pytest.approx((1 + 0 + 0.5) / 3)
    rundir.write_arc_votes(20, state)
    stored = rundir.read_arc_votes(20)
    assert sorted(stored) == [10, 20]
    assert stored[10] == json.loads(json.dumps(voting.pool[10]))
    assert stored[20] == json.loads(json.dumps(state))


def test_task_subset_is_seeded_and_bounds_rows():
    voting = ARCVoting(TRUTH, num_aug=10)
    first = voting.subset(2, seed=3)
    assert first == voting.subset(2, seed=3) == ARCVoting(TRUTH, num_aug=10).subset(2, seed=3)
    assert len(first) == 2 and set(first) <= set(TRUTH)
    assert all(first[t] == 11 * len(TRUTH[t]) for t in first)  # (10 augmentations + 1) x test pairs
    draws = {tuple(voting.subset(2, seed=s)) for s in range(12)}
    assert len(draws) > 1  # the seed matters
    assert voting.subset(-1, seed=0) is None and voting.subset(3, seed=0) is None  # every task
    for bad in (0, -2):
        with pytest.raises(ValueError, match="arc_subset_tasks"):
            voting.subset(bad, seed=0)
    with pytest.raises(ValueError, match="num_aug"):
        ARCVoting(TRUTH).subset(1, seed=0)


_WORKER = """
import json, os
import tensorflow as tf
from tests.evaluators.arc_voting_test import EVAL1, TRUTH, _out
from trm_tf.evaluators.arc_voting import ARCVoting
strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
voting = ARCVoting(TRUTH, num_aug=10)
voting.update(_out(EVAL1[:2] if index == 0 else EVAL1[2:]))
voting.reduce(strategy)
print("RESULT " + json.dumps([voting.result(), voting.arc.submission(TRUTH)]))
"""


def test_reduce_merges_two_worker_processes():
    """ARCVoting.reduce under MultiWorkerMirroredStrategy (two processes holding votes of different
    sizes, merged through `distribute.gather_bytes`) scores as one evaluator holding every vote."""
    ports = free_ports(2)
    procs = []
    for i in range(2):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": i},
        }
        env = dict(os.environ, PYTHONPATH=REPO, TF_CONFIG=json.dumps(tf_config))
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    got = [json.loads(o.split("RESULT ", 1)[1]) for o, _ in outs]
    one = ARCVoting(TRUTH, num_aug=10)
    one.update(_out(EVAL1))
    want = json.loads(json.dumps([one.result(), one.arc.submission(TRUTH)]))
    assert got == [want, want]
    assert want[0]["ARC/pass@1"] == pytest.approx(1.5 / 3)  # the hand count of EVAL1 above
