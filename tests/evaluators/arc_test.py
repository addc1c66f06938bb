"""The ARC evaluator (trm_tf/evaluators/arc.py): pass@K of one checkpoint and pooled over a run's
evaluations, against votes counted by hand on real ARC-AGI tasks, the pool's resume through the run
directory (the interface's `restore` / `record` / `write`), and the merge of two worker processes' votes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.testing.launch import REPO, free_ports, worker_env
from tests.testing.tiny_datasets import ARC_DUMMY_DATA as DUMMY
from trm_tf.evaluators.arc import ARCEvaluator
from trm_tf.evaluators.arc_votes import PASS_KS, load_ground_truth
from trm_tf.tasks import arc as arc_task
from trm_tf.tasks import grids
from trm_tf.workdir import RunDir

TRUTH = load_ground_truth(str(DUMMY / "arc-agi_evaluation_solutions.json"))
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
    """Eval-step outputs as ARCEvaluator.update gets them; rows: (task, test pair, predicted grid or
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
    voting.select_tasks(scope)
    voting.begin()
    voting.update(_out(rows))
    metrics = {**voting.result(), **voting.pooled_result(step)}
    return metrics, voting.commit(step)


def test_single_and_pooled_pass_at_k_against_hand_counted_votes():
    voting = ARCEvaluator(TRUTH, num_aug=10)
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
    voting = ARCEvaluator(TRUTH, num_aug=10)
    _evaluate(voting, EVAL1, 10)
    _evaluate(voting, EVAL2, 20)
    m, _ = _evaluate(voting, EVAL2, 20)  # `--mode=eval` on the checkpoint of step 20
    assert m["ARC/pooled/num_evaluations"] == 2
    assert m["ARC/pooled/pass@1"] == pytest.approx(2 / 3)  # as the first evaluation of step 20


def _record(voting, rows, step, rundir, scope=None):
    """One evaluation of a run through the interface: its metrics (with `record`'s) and files."""
    voting.select_tasks(scope)
    voting.begin()
    voting.update(_out(rows))
    metrics = {**voting.result(), **voting.record(step, rundir)}
    voting.write(step, rundir)
    return metrics


def test_pool_resumes_from_the_run_directory(tmp_path):
    rundir = RunDir(str(tmp_path / "run"))
    voting = ARCEvaluator(TRUTH, num_aug=10)
    voting.restore(rundir, 0)  # a new run: nothing stored
    assert voting.pool == {}
    m1 = _record(voting, EVAL1, 10, rundir)
    m2 = _record(voting, EVAL2, 20, rundir)
    # The numbers counted by hand above (`record` is `pooled_result` and `commit`, plus the files).
    ref = ARCEvaluator(TRUTH, num_aug=10)
    assert m1 == _evaluate(ref, EVAL1, 10)[0] and m2 == _evaluate(ref, EVAL2, 20)[0]
    assert m2["ARC/pooled/pass@1"] == pytest.approx(2 / 3)
    assert rundir.arc_vote_steps() == [10, 20]
    assert rundir.read_arc_votes(20)[20] == json.loads(json.dumps(voting.pool[20]))
    sub = json.loads(open(rundir.submission(20)).read())
    assert sub == json.loads(json.dumps(voting.votes.submission(TRUTH)))

    # Preempted after the evaluation of step 20 but before its checkpoint: resume from step 10.
    reader = RunDir(rundir.path, writer=False)
    reader_voting = ARCEvaluator(TRUTH, num_aug=10)
    reader_voting.restore(reader, 10)  # a process that does not write deletes nothing
    assert reader.arc_vote_steps() == [10, 20] and sorted(reader_voting.pool) == [10]
    resumed = ARCEvaluator(TRUTH, num_aug=10)
    resumed.restore(rundir, 10)
    assert rundir.arc_vote_steps() == [10] and sorted(resumed.pool) == [10]
    m = _record(resumed, EVAL3, 20, rundir)
    # Pooled = the first evaluation + this one: A T 5 > W 1; B W 2 only; C pair 0 W 3 > T 1, pair 1 W 1.
    assert m["ARC/pooled/num_evaluations"] == 2
    assert m["ARC/pooled/pass@1"] == pytest.approx(1 / 3)
    assert m["ARC/pooled/pass@2"] == pytest.approx((1 + 0 + 0.5) / 3)
    stored = rundir.read_arc_votes(20)
    assert sorted(stored) == [10, 20]
    assert stored[10] == json.loads(json.dumps(voting.pool[10]))
    assert stored[20] == json.loads(json.dumps(resumed.pool[20]))


def test_task_subset_is_seeded_and_bounds_rows():
    voting = ARCEvaluator(TRUTH, num_aug=10)
    first = voting.subset(2, seed=3)
    assert first == voting.subset(2, seed=3) == ARCEvaluator(TRUTH, num_aug=10).subset(2, seed=3)
    assert len(first) == 2 and set(first) <= set(TRUTH)
    assert all(first[t] == 11 * len(TRUTH[t]) for t in first)  # (10 augmentations + 1) x test pairs
    draws = {tuple(voting.subset(2, seed=s)) for s in range(12)}
    assert len(draws) > 1  # the seed matters
    assert voting.subset(-1, seed=0) is None and voting.subset(3, seed=0) is None  # every task
    for bad in (0, -2):
        with pytest.raises(ValueError, match="arc_subset_tasks"):
            voting.subset(bad, seed=0)
    with pytest.raises(ValueError, match="num_aug"):
        ARCEvaluator(TRUTH).subset(1, seed=0)


_WORKER = """
import json, os
import tensorflow as tf
from tests.evaluators.arc_test import EVAL1, TRUTH, _out
from trm_tf.evaluators.arc import ARCEvaluator
strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
voting = ARCEvaluator(TRUTH, num_aug=10)
voting.update(_out(EVAL1[:2] if index == 0 else EVAL1[2:]))
voting.reduce(strategy)
print("RESULT " + json.dumps([voting.result(), voting.votes.submission(TRUTH)]))
"""


def test_reduce_merges_two_worker_processes():
    """ARCEvaluator.reduce under MultiWorkerMirroredStrategy (two processes holding votes of different
    sizes, merged through `distribute.gather_bytes`) scores as one evaluator holding every vote."""
    ports = free_ports(2)
    procs = []
    for i in range(2):
        env = worker_env(ports, i, TF_CPP_MIN_LOG_LEVEL="3")
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
    one = ARCEvaluator(TRUTH, num_aug=10)
    one.update(_out(EVAL1))
    want = json.loads(json.dumps([one.result(), one.votes.submission(TRUTH)]))
    assert got == [want, want]
    assert want[0]["ARC/pass@1"] == pytest.approx(1.5 / 3)  # the hand count of EVAL1 above


# ------------------------------------------------------------------------------------------------
# The reference's voting rule, transcribed from reading its `evaluators/arc.py` (class `ARC`:
# `begin_eval`, `update_batch`, `result`) so this test needs no copy of it: votes are keyed by
# (task, hash of the un-augmented test input); for each key, every distinct predicted grid gets its
# count and the mean of sigmoid(q_halt) in float64 over its votes; grids are sorted by the pair
# [count, mean q] descending; pass@K of a test pair is 1 when the true output is among the first K; a
# task scores the mean over its test pairs; the metric is the sum over tasks divided by the number of
# test tasks (a pair without votes is skipped, i.e. scores 0). With `aggregated_voting` (its default)
# `begin_eval` keeps the votes of earlier evaluations, so evaluation k pools evaluations 1..k.


def _reference_pass_at_k(evaluations, truth, inputs, ks, aggregated_voting=True):
    """pass@K after each evaluation; `evaluations`: lists of (task, test index, predicted grid, q logit)."""
    preds: dict = {}
    out = []
    for rows in evaluations:
        if not aggregated_voting:
            preds = {}
        for task, k, grid, q in rows:
            key = (task, json.dumps(inputs[task][k]))
            preds.setdefault(key, []).append((json.dumps(grid), 1 / (1 + np.exp(-np.float64(q)))))
        correct = np.zeros(len(ks))
        for task, outputs in truth.items():
            ok = np.zeros(len(ks))
            for k, true in enumerate(outputs):
                p_map: dict = {}
                for h, q in preds.get((task, json.dumps(inputs[task][k])), []):
                    p_map.setdefault(h, [0, 0.0])
                    p_map[h][0] += 1
                    p_map[h][1] += q
                if not p_map:
                    continue
                ranked = sorted(
                    ((h, [c, s / c]) for h, (c, s) in p_map.items()),
                    key=lambda kv: kv[1],
                    reverse=True,
                )
                for i, kk in enumerate(ks):
                    ok[i] += any(h == json.dumps(true) for h, _ in ranked[:kk])
            correct += ok / len(outputs)
        out.append({f"ARC/pass@{kk}": correct[i] / len(truth) for i, kk in enumerate(ks)})
    return out


def test_pass_at_k_equals_the_reference_voting_rule_on_random_votes():
    """Random votes of three evaluations on the real dummy tasks (candidate answers: the truth and
    three wrong grids, random q logits so no two grids tie on [count, mean q]): this checkpoint's
    `ARC/pass@K` equals the reference's rule without aggregation, and `ARC/pooled/pass@K` equals its
    default, aggregated one, after every evaluation and for every K."""
    rng = np.random.default_rng(2024)
    wrong = [W, [[1]], [[2, 3], [4, 5]]]
    pairs = [(t, k) for t in sorted(TRUTH) for k in range(len(TRUTH[t]))]
    evaluations = []
    for _ in range(3):
        rows = []
        for t, k in pairs:
            if rng.random() < 0.15:  # now and then a pair gets no vote in an evaluation
                continue
            p_true = rng.uniform(0.1, 0.8)  # how often this checkpoint answers this pair right
            for _ in range(int(rng.integers(1, 9))):
                c = 3 if rng.random() < p_true else int(rng.integers(0, 3))
                rows.append((t, k, "T" if c == 3 else wrong[c], float(rng.normal(0, 2))))
        evaluations.append(rows)
    as_grids = [
        [(t, k, TRUTH[t][k] if g == "T" else g, q) for t, k, g, q in e] for e in evaluations
    ]
    ks = PASS_KS  # (1, 2, 5, 10, 100, 1000), the reference's too
    ours_single, ours_pooled = [], []
    voting = ARCEvaluator(TRUTH, num_aug=10)
    for step, rows in zip((10, 20, 30), evaluations):
        voting.begin()
        voting.update(_out(rows))
        ours_single.append(voting.result())
        ours_pooled.append(voting.pooled_result(step))
        voting.commit(step)
    ref_single = _reference_pass_at_k(as_grids, TRUTH, INPUTS, ks, aggregated_voting=False)
    ref_pooled = _reference_pass_at_k(as_grids, TRUTH, INPUTS, ks)
    for i in range(3):
        for k in ks:
            assert ours_single[i][f"ARC/pass@{k}"] == pytest.approx(ref_single[i][f"ARC/pass@{k}"])
            assert ours_pooled[i][f"ARC/pooled/pass@{k}"] == pytest.approx(
                ref_pooled[i][f"ARC/pass@{k}"]
            )
    # The votes are not trivial: pooling changes the answer somewhere, and not every pair passes.
    # The votes are not trivial: pooling changes pass@1 at the 2nd and 3rd evaluations (0.5 -> 0.83,
    # 0 -> 0.5 for this seed), and pass@1 is neither 0 nor 1 throughout.
    assert [ref_single[i]["ARC/pass@1"] != ref_pooled[i]["ARC/pass@1"] for i in range(3)] == [
        False,
        True,
        True,
    ]
    assert all(0 < r["ARC/pass@1"] < 1 for r in ref_pooled)
