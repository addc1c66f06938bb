"""A run's ARC evaluations on the tiny real ARC dataset: the task-complete subset of periodic evaluations
(input pipeline, one and two hosts) and `train.Evaluation` with a scripted model (right or wrong per
evaluation), whose single and pooled pass@K, stored votes and resume are counted by hand."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import args
from tests.testing.tiny_datasets import build_tiny_arc
from trm_tf import evaluators, train
from trm_tf.data import eval_input, records
from trm_tf.evaluators.arc import DEVICE_FEATURES, ARCEvaluator
from trm_tf.evaluators.base import Evaluator
from trm_tf.summaries import MetricWriter
from trm_tf.workdir import RunDir


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    return build_tiny_arc(str(tmp_path_factory.mktemp("tfds")))


def _test_rows(spec):
    """(task name, puzzle identifier, test index) of every test row, read directly with TFDS."""
    ds = tfds.builder(spec.name, data_dir=spec.data_dir).as_dataset(split="test")
    return [
        (r["task_name"].decode(), int(r["puzzle_identifier"]), int(r["test_index"]))
        for r in tfds.as_numpy(ds)
    ]


def _rows_of(batches, names):
    return [
        (names[int(b["task_id"][j])], int(b["puzzle_identifiers"][j]), int(b["test_index"][j]))
        for b in batches
        for j in np.flatnonzero(b["mask"])
    ]


def test_task_subset_is_every_row_of_its_tasks_split_over_hosts(arc):
    voting = ARCEvaluator.for_dataset(arc)
    tasks = voting.subset(2, seed=0)
    want = sorted(r for r in _test_rows(arc) if r[0] in tasks)
    assert len(want) == sum(tasks.values()) == 33  # every copy of the two tasks' test pairs
    names = voting.task_names
    kwargs = dict(extra_features=DEVICE_FEATURES, task_names=names, tasks=tasks)
    ds, steps = eval_input.make_eval_dataset(arc, 8, **kwargs)
    assert steps == 5  # 33 rows in batches of 8
    assert sorted(_rows_of(ds, names)) == want
    # Two hosts (one input pipeline per replica): each keeps its share of the tasks, the same rows.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    opts = records.input_options("per_replica")
    dist, steps = eval_input.distribute_eval(strategy, arc, 8, options=opts, **kwargs)
    shares = eval_input.eval_task_shares(tasks, 2)
    assert steps == max(-(-sum(tasks[t] for t in s) // 4) for s in shares)
    it = iter(dist)
    per_host = [[], []]
    for _ in range(steps):
        for host, b in enumerate(strategy.experimental_local_results(next(it))):
            per_host[host] += _rows_of([tf.nest.map_structure(lambda t: t.numpy(), b)], names)
    for host in (0, 1):
        assert {r[0] for r in per_host[host]} == set(shares[host])
    assert sorted(per_host[0] + per_host[1]) == want  # disjoint and complete
    # A bound below a task's rows fails instead of dropping rows silently.
    short = {t: n - 1 for t, n in tasks.items()}
    bad, _ = eval_input.make_eval_dataset(arc, 8, **{**kwargs, "tasks": short})
    with pytest.raises(tf.errors.InvalidArgumentError, match="more rows than its bound"):
        list(bad)


class ScriptedTrainer:
    """Trainer.evaluate's contract with a scripted model: every row predicts its true output when
    `right`, else its own input; q_halt logit `q`. Feeds the run's real eval stream to the evaluators."""

    eval_halt_max_steps = 1
    ema = None

    def __init__(self, strategy):
        self.strategy = strategy
        self.right, self.q = True, 0.0

    def evaluate(self, dist, steps, use_ema=True, evaluators=()):
        for e in evaluators:
            e.begin()
        it = iter(dist)
        for _ in range(steps):
            out = tf.nest.map_structure(lambda t: t.numpy(), next(it))
            n = len(out["mask"])
            out["preds"] = (
                np.where(out["labels"] < 0, 0, out["labels"]) if self.right else out["inputs"]
            )
            out["q_halt"] = np.full(n, self.q, np.float32)
            # One replica's partial sums (a leading replica axis of 1), as Trainer.evaluate gives them.
            out["sums"] = {"count": np.array([out["mask"].sum()], np.float32)}
            out["exact_per_step"] = out["token_per_step"] = np.zeros((1, 1), np.float32)
            for e in evaluators:
                e.update(out)
        results = {}
        for e in evaluators:
            e.reduce(self.strategy)
            results.update(e.result())
        return results


def _evaluation(arc, workdir, start_step, names=("accuracy", "arc")):
    config = args.build(None)
    config.data.name, config.data.config = "arc_agi", "arc1_aug10"
    config.eval.evaluators = names
    config.eval.arc_subset_tasks, config.seed = 2, 0
    config.eval.global_batch_size = 8
    strategy = tf.distribute.get_strategy()
    rundir = RunDir(workdir)
    trainer = ScriptedTrainer(strategy)
    writer = MetricWriter(workdir, enabled=True)
    return train.Evaluation(config, arc, strategy, trainer, rundir, writer, None, start_step)


def _run(evaluation, step, full, right, q):
    evaluation.trainer.right, evaluation.trainer.q = right, q
    return evaluation(step, full=full)


def test_evaluation_reports_single_and_pooled_and_resumes(arc, tmp_path):
    workdir = str(tmp_path / "run")
    ev = _evaluation(arc, workdir, 0)
    accuracy, voting = ev.evaluators
    assert (accuracy.name, voting.name) == ("accuracy", "arc")
    subset = voting.subset(2, 0)
    assert ev.periodic_tasks == voting.periodic_tasks == subset
    # Step 100, periodic: every copy right (q logit 0): the two subset tasks only.
    m = _run(ev, 100, False, True, 0.0)
    assert m["ARC/num_tasks"] == 2 and m["num_examples"] == 33
    assert m["ARC/pass@1"] == m["ARC/pooled/pass@1"] == 1.0
    # Step 200, periodic: every copy wrong but less confident (q -1): this checkpoint 0; pooled, the
    # right grid (11 votes, q 0) beats the wrong one (11 votes, q -1) on the tie.
    m = _run(ev, 200, False, False, -1.0)
    assert m["ARC/pass@2"] == 0.0 and m["ARC/pooled/pass@1"] == 1.0
    assert m["ARC/pooled/num_evaluations"] == 2
    # Step 300, final and full, wrong again: subset tasks pool W 22 > T 11 (pass@1 lost, pass@2 kept);
    # the third task has only this evaluation's wrong votes.
    m = _run(ev, 300, True, False, -1.0)
    assert m["ARC/num_tasks"] == 3 and m["num_examples"] == arc.num_test_examples
    assert m["ARC/pass@1000"] == 0.0 and m["ARC/pooled/pass@1"] == 0.0
    assert m["ARC/pooled/pass@2"] == pytest.approx(2 / 3)
    results = json.load(open(os.path.join(workdir, "eval_results.json")))
    assert [h["ARC/pooled/pass@1"] for h in results["history"]] == [1.0, 1.0, 0.0]
    assert [h["full"] for h in results["history"]] == [False, False, True]
    logged = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["ARC/pooled/pass@2"] for r in logged] == [1.0, 1.0, pytest.approx(2 / 3)]
    sub = json.load(open(os.path.join(workdir, "submission_step100.json")))
    assert sorted(sub) == sorted(subset)  # a periodic submission lists the scored tasks

    # Resume from the checkpoint of step 100: the votes of steps 200 and 300 are dropped.
    resumed = _evaluation(arc, workdir, 100)
    assert RunDir(workdir).arc_vote_steps() == [100] and sorted(resumed.evaluators[1].pool) == [100]
    m = _run(
        resumed, 200, True, False, 1.0
    )  # full, wrong and confident: W (11, q 1) beats T (11, q 0)
    assert m["ARC/pooled/num_evaluations"] == 2
    assert m["ARC/pooled/pass@1"] == 0.0 and m["ARC/pooled/pass@2"] == pytest.approx(2 / 3)
    # `--mode=eval` on that checkpoint re-evaluates step 200: it replaces its stored votes.
    again = _evaluation(arc, workdir, 200)
    m = _run(again, 200, True, True, 0.0)
    assert m["ARC/pooled/num_evaluations"] == 2 and m["ARC/pooled/pass@1"] == 1.0
    assert RunDir(workdir).arc_vote_steps() == [100, 200]


class HaltConfidence(Evaluator):
    """A test-only host-side metric: mean sigmoid(q_halt) of the real rows and how many puzzles they
    cover, reading per-row fields of its own (`puzzle_identifiers`) next to ARC's; across evaluations it
    keeps step -> mean (`record`), stored in the run directory (`write`) and read back by `restore`."""

    name = "halt_confidence"
    rows = ("q_halt", "mask", "puzzle_identifiers")
    FILE = "halt_confidence.json"

    @classmethod
    def from_config(cls, config, spec, halt_max_steps):
        return cls()

    def restore(self, rundir, step):
        path = rundir.file(self.FILE)
        stored = json.load(tf.io.gfile.GFile(path)) if tf.io.gfile.exists(path) else {}
        self.history = {int(s): v for s, v in stored.items() if int(s) <= step}

    def begin(self):
        self.rows_seen, self.q_sum, self.puzzles = 0, 0.0, set()

    def update(self, out):
        real = out["mask"]
        q = out["q_halt"][real].astype(np.float64)
        self.rows_seen += int(real.sum())
        self.q_sum += float((1 / (1 + np.exp(-q))).sum())
        self.puzzles |= {int(p) for p in out["puzzle_identifiers"][real]}

    def reduce(self, strategy):
        assert strategy.num_replicas_in_sync == 1  # one process: nothing to merge

    def result(self):
        return {
            "halt_confidence/mean": self.q_sum / self.rows_seen,
            "halt_confidence/rows": float(self.rows_seen),
            "halt_confidence/puzzles": float(len(self.puzzles)),
        }

    def record(self, step, rundir):
        self.history[step] = self.q_sum / self.rows_seen
        return {"halt_confidence/evaluations": float(len(self.history))}

    def write(self, step, rundir):
        with tf.io.gfile.GFile(rundir.file(self.FILE), "w") as f:
            json.dump(self.history, f)


def test_another_host_metric_runs_next_to_arc(arc, tmp_path, monkeypatch):
    """`eval.evaluators = ("arc", "halt_confidence")`: a registered test-only evaluator next to ARC, no
    accuracy. Both get every row they read and both report (ARC's numbers counted by hand); each keeps
    and restores its own state across evaluations."""
    monkeypatch.setitem(evaluators.EVALUATORS, HaltConfidence.name, HaltConfidence)
    workdir = str(tmp_path / "run")
    names = ("arc", HaltConfidence.name)
    ev = _evaluation(arc, workdir, 0, names)
    assert [type(e) for e in ev.evaluators] == [ARCEvaluator, HaltConfidence]
    subset = ev.evaluators[0].subset(2, 0)
    want_puzzles = {p for t, p, _ in _test_rows(arc) if t in subset}
    m = _run(ev, 100, False, True, 0.0)
    assert m["ARC/num_tasks"] == 2 and m["ARC/pass@1"] == m["ARC/pooled/pass@1"] == 1.0
    assert "num_examples" not in m and "exact_accuracy" not in m  # no accuracy evaluator
    assert m["halt_confidence/rows"] == 33  # the task-complete subset ARC asked for, every row once
    assert m["halt_confidence/puzzles"] == len(want_puzzles)
    assert m["halt_confidence/mean"] == 0.5 and m["halt_confidence/evaluations"] == 1
    m = _run(ev, 200, True, False, 2.0)  # full: every row of every task
    assert m["ARC/num_tasks"] == 3 and m["ARC/pass@1000"] == 0.0
    # Pooled: the subset tasks' wrong grid (11 votes, q logit 2) beats their right one (11, q 0) on the
    # tie, the right one second; the third task has only wrong votes.
    assert m["ARC/pooled/pass@1"] == 0.0 and m["ARC/pooled/pass@2"] == pytest.approx(2 / 3)
    assert m["halt_confidence/rows"] == arc.num_test_examples
    assert m["halt_confidence/mean"] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-12)
    assert m["halt_confidence/evaluations"] == 2
    # The checkpoint average is not one of the run's evaluations: neither records nor writes.
    avg = ev(200, full=True, use_ema=False, tag="_average")
    assert "halt_confidence/evaluations" not in avg and "ARC/pooled/pass@1" not in avg
    assert avg["halt_confidence/rows"] == arc.num_test_examples
    history = json.load(open(os.path.join(workdir, "eval_results.json")))["history"]
    assert [h["halt_confidence/evaluations"] for h in history] == [1.0, 2.0]
    assert json.load(open(os.path.join(workdir, HaltConfidence.FILE))) == {
        "100": 0.5,
        "200": pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-12),
    }
    assert os.path.exists(os.path.join(workdir, "submission_step200.json"))  # ARC's file too
    # Resumed from the checkpoint of step 100: each evaluator restores its own state.
    resumed = _evaluation(arc, workdir, 100, names)
    assert resumed.evaluators[1].history == {100: 0.5}
    assert sorted(resumed.evaluators[0].pool) == [100]
