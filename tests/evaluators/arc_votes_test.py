"""The ARC vote store (trm_tf/evaluators/arc_votes.py): majority vote with the q tie-break, pass@K, the
merge of hosts' votes, the Kaggle submission, and the builder's own augmented rows scoring 1. The grid
math it undoes augmentations with is tested in tests/tasks."""

import json

import numpy as np
import pytest

from tests.testing.tiny_datasets import ARC_DUMMY_DATA
from tfds_builders.arc_agi import arc_lib
from tfds_builders.arc_agi.arc_loading import load_tasks
from trm_tf.evaluators import arc_votes
from trm_tf.tasks import arc as arc_task
from trm_tf.tasks import grids

DUMMY = ARC_DUMMY_DATA


def _perms(rng, n):
    maps = [np.arange(10, dtype=np.uint8)]
    for _ in range(n):
        maps.append(np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8))
    return maps


def _row(grid, t, cmap):
    return arc_task.encode_grid(grids.augment(np.asarray(grid, np.uint8), t, cmap))


def _batch(rows):
    """rows: (task, test_index, true_input, pred_grid, q_logit, t, cmap)."""
    return {
        "inputs": np.stack([_row(r[2], r[5], r[6]) for r in rows]),
        "preds": np.stack([_row(r[3], r[5], r[6]) for r in rows]),
        "q_halt": np.array([r[4] for r in rows], np.float32),
        "task_name": np.array([r[0].encode() for r in rows], object),
        "test_index": np.array([r[1] for r in rows], np.int32),
        "transform_id": np.array([r[5] for r in rows], np.int32),
        "color_map": np.stack([r[6] for r in rows]),
        "mask": np.ones(len(rows), bool),
    }


A, B, C = [[1, 2], [3, 4]], [[5, 5], [5, 5]], [[7]]
IN = [[0, 1], [2, 3]]
TRUTH = {"t1": [A, C], "t2": [B]}


def _votes():
    rng = np.random.default_rng(1)
    maps = _perms(rng, 8)
    rows = [
        # t1 pair 0: A x2 (q 0, 0), B x2 (q 2, 2) -> B wins the tie on count by mean q; truth A is 2nd.
        ("t1", 0, IN, A, 0.0, 1, maps[1]),
        ("t1", 0, IN, A, 0.0, 6, maps[2]),
        ("t1", 0, IN, B, 2.0, 7, maps[3]),
        ("t1", 0, IN, B, 2.0, 0, maps[0]),
        # t1 pair 1: C x1, B x3 -> top-1 B, truth C 2nd.
        ("t1", 1, IN, C, 5.0, 2, maps[4]),
        ("t1", 1, IN, B, -1.0, 3, maps[5]),
        ("t1", 1, IN, B, -1.0, 4, maps[6]),
        ("t1", 1, IN, B, -1.0, 5, maps[7]),
        # t2 pair 0: B x2 wins over A x1.
        ("t2", 0, IN, B, 0.0, 5, maps[8]),
        ("t2", 0, IN, B, 0.0, 2, maps[1]),
        ("t2", 0, IN, A, 9.0, 1, maps[2]),
    ]
    return rows


def test_voting_pass_at_k_and_q_tiebreak():
    ev = arc_votes.ARCVoteStore()
    rows = _votes()
    batch = _batch(rows + [("t2", 0, IN, A, 50.0, 0, np.arange(10, dtype=np.uint8))])
    batch["mask"][-1] = False  # a padding row must not vote
    ev.update(batch)
    ranked = ev.ranked("t1", 0)
    assert [k for k, _, _ in ranked] == [arc_votes.grid_key(B), arc_votes.grid_key(A)]
    assert ranked[0][1] == 2 and ranked[0][2] == pytest.approx(1 / (1 + np.exp(-2.0)))
    res = ev.result(TRUTH)
    # t1: pair0 pass@1 0, pass@2 1; pair1 pass@1 0, pass@2 1 -> 0 / 1. t2: 1 / 1.
    assert res["ARC/pass@1"] == pytest.approx((0.0 + 1.0) / 2)
    assert res["ARC/pass@2"] == pytest.approx((1.0 + 1.0) / 2)
    assert res["ARC/pass@1000"] == pytest.approx(1.0)
    assert res["ARC/input_mismatches"] == 0 and res["ARC/num_tasks"] == 2
    # A task without predictions counts as 0.
    assert ev.result({**TRUTH, "t3": [A]})["ARC/pass@2"] == pytest.approx(2 / 3)


def test_merge_of_two_hosts_equals_one_store():
    rows = _votes()
    single = arc_votes.ARCVoteStore()
    single.update(_batch(rows))
    hosts = [arc_votes.ARCVoteStore(), arc_votes.ARCVoteStore()]
    hosts[0].update(_batch(rows[::2]))
    hosts[1].update(_batch(rows[1::2]))
    chief = arc_votes.ARCVoteStore()
    chief.merge(json.loads(json.dumps([h.state() for h in hosts])))  # through JSON, as across hosts
    assert chief.result(TRUTH) == single.result(TRUTH)
    for task, idx in (("t1", 0), ("t1", 1), ("t2", 0)):
        got, want = chief.ranked(task, idx), single.ranked(task, idx)
        assert [(k, c) for k, c, _ in got] == [(k, c) for k, c, _ in want]
        np.testing.assert_allclose([q for *_, q in got], [q for *_, q in want])


def test_reset_and_aggregated_voting():
    rows = _votes()
    fresh, agg = arc_votes.ARCVoteStore(), arc_votes.ARCVoteStore(aggregated_voting=True)
    for ev in (fresh, agg):
        ev.update(_batch(rows))
        ev.reset()
        ev.update(_batch(rows[:1]))
    assert fresh.ranked("t1", 0)[0][1] == 1
    assert agg.ranked("t1", 0)[0][1] == 3  # the reference quirk: votes survive across evaluations


def test_submission_json(tmp_path):
    ev = arc_votes.ARCVoteStore()
    ev.update(_batch(_votes()))
    path = tmp_path / "submission.json"
    ev.write_submission(str(path), {**TRUTH, "t3": [A]})
    sub = json.loads(path.read_text())
    assert sorted(sub) == ["t1", "t2", "t3"]
    assert sub["t1"] == [{"attempt_1": B, "attempt_2": A}, {"attempt_1": B, "attempt_2": C}]
    assert sub["t2"] == [{"attempt_1": B, "attempt_2": A}]
    assert sub["t3"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]


def test_builder_rows_with_true_labels_score_one(tmp_path):
    """End to end with the builder's own rows (augmented test split of the dummy tasks)."""
    tasks = load_tasks(DUMMY, ("training", "evaluation", "concept"))
    plans, _ = arc_lib.plan_dataset(tasks, "evaluation", 10, seed=42)
    (tmp_path / arc_task.TEST_PUZZLES_FILE).write_text(json.dumps(arc_lib.test_puzzles_json(plans)))
    truth = arc_votes.load_ground_truth(str(tmp_path))
    ev = arc_votes.ARCVoteStore()
    for plan in plans:
        rec = arc_lib.encode_task_split(plan, "test", 42, translate=False)
        if rec is None:
            continue
        k, n = rec["inputs"].shape[:2]
        ev.update(
            {
                "inputs": rec["inputs"].reshape(k * n, -1),
                "preds": rec["labels"].reshape(k * n, -1),
                "q_halt": np.zeros(k * n),
                "task_name": np.array([plan.task.name] * (k * n)),
                "test_index": np.tile(rec["test_index"], k),
                "transform_id": np.repeat(plan.trans_ids, n),
                "color_map": np.repeat(plan.color_maps, n, axis=0),
            }
        )
    res = ev.result(truth)
    assert res["ARC/pass@1"] == 1.0 and res["ARC/input_mismatches"] == 0
    assert ev.ranked(sorted(truth)[0], 0)[0][1] == 11  # all 11 copies agree after inversion
    # Keyed by the int `group` (TPU-friendly) instead of the task name: same votes.
    by_group = arc_votes.ARCVoteStore(test_task_names=list(truth))
    for group, plan in enumerate(p for p in plans if p.is_test_task):
        rec = arc_lib.encode_task_split(plan, "test", 42, translate=False)
        k, n = rec["inputs"].shape[:2]
        by_group.update(
            {
                "inputs": rec["inputs"].reshape(k * n, -1),
                "preds": rec["labels"].reshape(k * n, -1),
                "q_halt": np.zeros(k * n),
                "group": np.full(k * n, group),
                "test_index": np.tile(rec["test_index"], k),
                "transform_id": np.repeat(plan.trans_ids, n),
                "color_map": np.repeat(plan.color_maps, n, axis=0),
            }
        )
    assert by_group.state() == ev.state()
    # The Kaggle solutions file gives the same ground truth.
    sol = arc_votes.load_ground_truth(str(DUMMY / "arc-agi_evaluation_solutions.json"))
    assert sol == truth
