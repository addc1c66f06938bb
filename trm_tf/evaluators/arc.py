"""ARC pass@K voting as an evaluator of a run: pass@K of this checkpoint, and pass@K pooled over the run.

The reference builds one ARC evaluator per run whose vote store is never cleared, so the pass@K it logs
at its k-th evaluation counts the votes of every checkpoint evaluated so far (all of them full
evaluations); that is the number its papers report. A run here reports both, under distinct names:

* `ARC/pass@K` — this checkpoint alone (its votes only), with `ARC/num_tasks` and `ARC/input_mismatches`;
* `ARC/pooled/pass@K` — the votes of this evaluation added to the stored votes of every earlier
  evaluation of the run (`ARC/pooled/num_evaluations` counts them, this one included): the reference's
  number when every evaluation is full.

Both are scored over the tasks this evaluation covers. Periodic evaluations cover a *task-complete
subset*: every augmented test row of `eval.arc_subset_tasks` tasks drawn once from `seed` (`subset`), the
same tasks at every evaluation, so their curves are comparable; the final evaluation covers every task.
A task's pooled votes come from every evaluation that saw it: a subset task pools all periodic
evaluations and the final one, any other task only the full evaluations.

The votes (`trm_tf.evaluators.arc_votes.ARCVoteStore`) are merged across worker processes by `reduce`,
so every process holds the same pool. Pooling is by step, through the evaluator interface
(`trm_tf.evaluators.base`): `restore(rundir, step)` loads the stored votes of the run's earlier
evaluations (`RunDir.read_arc_votes`; those of later steps, left by a process that stopped before its
next checkpoint, are deleted), `record(step, rundir)` pools the stored evaluations of steps before `step`
with this one and stores this one's votes under `step` (replacing an earlier evaluation of the same step,
so a re-evaluated checkpoint is never counted twice), and `write(step, rundir)` writes this checkpoint's
Kaggle submission over the scored tasks.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from absl import logging

from trm_tf.evaluators.arc_votes import ARCVoteStore, load_ground_truth
from trm_tf.evaluators.base import Evaluator

# Integer features ARC voting needs next to each prediction (each row brings its own task, transform and
# colour map, so any host or replica order scores right); task names are resolved on the host from the
# sorted names of the ground truth.
DEVICE_FEATURES = ("task_id", "test_index", "transform_id", "color_map")
# Second word of the subset draw's seed, so that it does not reuse the stream of another draw of `seed`.
_SUBSET_STREAM = 0xA5C


def _check_subset_tasks(num_tasks: int) -> None:
    if num_tasks == 0 or num_tasks < -1:
        raise ValueError(f"eval.arc_subset_tasks must be -1 (every task) or >= 1, got {num_tasks}")


class ARCEvaluator(Evaluator):
    """pass@K voting of a run: this evaluation's votes (`votes`, an `ARCVoteStore`) and the run's pool.

    `reduce` merges the worker processes' votes through the strategy (`distribute.gather_bytes`), so the
    result is the same on one host, on a pod's single client and on several worker processes.
    """

    name = "arc"
    headline = "ARC/pooled/pass@2"  # the reference's logged ARC/pass@2, the paper's figure
    features = DEVICE_FEATURES
    rows = ("preds", "q_halt", "inputs", "mask", *DEVICE_FEATURES)
    whole_tasks = True  # a test pair's votes are every augmented copy of it

    def __init__(self, truth: Mapping[str, Sequence], num_aug: int | None = None):
        """`truth`: task -> true test outputs (`load_ground_truth`); `num_aug`: augmented copies per
        task besides the original (the dataset's metadata), which bounds a task's test rows."""
        self.truth = dict(truth)
        self.task_names = sorted(truth)
        self.num_aug = num_aug
        self._names = np.asarray(self.task_names + [""], dtype=object)  # task_id -1 (padding) -> ""
        self.scope: list[str] | None = None  # the tasks this evaluation scores (None: every task)
        self.pool: dict[int, dict] = {}  # step -> merged votes of an earlier evaluation
        # The pool's votes merged once, in step order (extended as evaluations are added, so an
        # evaluation merges only what is new instead of every stored evaluation again).
        self._earlier, self._earlier_steps = ARCVoteStore(), ()
        self.begin()

    @classmethod
    def check_config(cls, config) -> None:
        if config.data.name != "arc_agi":
            raise ValueError(
                f"eval.evaluators: {cls.name!r} needs an arc_agi dataset, got data.name="
                f"{config.data.name!r}"
            )
        _check_subset_tasks(int(config.eval.arc_subset_tasks))

    @classmethod
    def from_config(cls, config, spec, halt_max_steps: int) -> ARCEvaluator:
        """The dataset's ground truth; periodic evaluations read `eval.arc_subset_tasks` tasks."""
        evaluator = cls.for_dataset(spec)
        evaluator.periodic_tasks = evaluator.subset(
            int(config.eval.arc_subset_tasks), int(config.seed)
        )
        return evaluator

    @classmethod
    def for_dataset(cls, spec) -> ARCEvaluator:
        """An evaluator scoring every task of the dataset `spec` (its test_puzzles.json)."""
        from trm_tf.data import datasets

        truth = load_ground_truth(datasets.tfds_builder(spec.name, spec.data_dir).data_dir)
        num_aug = spec.metadata.get("num_aug")
        return cls(truth, None if num_aug is None else int(num_aug))

    def subset(self, num_tasks: int, seed: int) -> dict[str, int] | None:
        """The task-complete subset of periodic evaluations: task -> upper bound on its test rows
        ((num_aug + 1) copies x its test pairs), for `eval_input.make_eval_dataset(tasks=...)`.

        `num_tasks` tasks drawn without replacement from the sorted task names with `seed` (the same
        tasks for every evaluation and every host count); None when `num_tasks` is -1 or covers every
        task (periodic evaluations are then full).
        """
        _check_subset_tasks(num_tasks)
        if num_tasks == -1 or num_tasks >= len(self.task_names):
            return None
        if self.num_aug is None:
            raise ValueError(
                "a task subset needs the dataset's num_aug (metadata) to bound its rows"
            )
        rng = np.random.default_rng([int(seed), _SUBSET_STREAM])
        chosen = sorted(rng.choice(len(self.task_names), size=num_tasks, replace=False))
        names = [self.task_names[i] for i in chosen]
        return {t: (self.num_aug + 1) * len(self.truth[t]) for t in names}

    def select_tasks(self, tasks: Collection[str] | None) -> None:
        self.scope = None if tasks is None else sorted(tasks)

    def scored_truth(self) -> dict[str, Sequence]:
        """The ground truth of the tasks this evaluation scores (`scope`)."""
        if self.scope is None:
            return self.truth
        return {t: self.truth[t] for t in self.scope}

    def begin(self) -> None:
        self.votes = ARCVoteStore()

    def update(self, out: dict) -> None:
        self.votes.update(
            {
                "task_name": self._names[np.asarray(out["task_id"]).reshape(-1)],
                "test_index": out["test_index"],
                "transform_id": out["transform_id"],
                "color_map": out["color_map"],
                "inputs": out["inputs"],
                "preds": out["preds"],
                "q_halt": out["q_halt"],
                "mask": out["mask"],
            }
        )

    def reduce(self, strategy) -> None:
        from trm_tf import distribute

        states = distribute.gather_bytes(strategy, json.dumps(self.votes.state()).encode())
        if len(states) > 1:
            self.votes.reset()
            self.votes.merge(json.loads(s) for s in states)

    def result(self) -> dict[str, float]:
        """pass@K of this evaluation's votes over the scored tasks (`ARC/pass@K`, ...)."""
        return self.votes.result(self.scored_truth())

    # -------------------------------------------------------------- the run's pool
    def restore(self, rundir, step: int) -> None:
        """The pool: the votes `rundir` holds for steps <= `step`; those of later steps are deleted, so
        a resumed run never pools an evaluation twice."""
        dropped = rundir.drop_arc_votes_after(step)
        if dropped:
            logging.info("Dropped the ARC votes of %d evaluations after step %d", dropped, step)
        self.load_pool(rundir.read_arc_votes(step))

    def load_pool(self, states: Mapping[int, dict]) -> None:
        """Sets the pool to the stored votes of earlier evaluations (step -> `ARCVoteStore.state()`)."""
        self.pool = {int(step): state for step, state in states.items()}
        self._earlier, self._earlier_steps = ARCVoteStore(), ()

    def _pool_before(self, step: int) -> ARCVoteStore:
        """The pooled votes of the stored evaluations at steps before `step`, merged in step order."""
        steps = tuple(s for s in sorted(self.pool) if s < step)
        if steps[: len(self._earlier_steps)] != self._earlier_steps:
            self._earlier, self._earlier_steps = ARCVoteStore(), ()
        self._earlier.merge(self.pool[s] for s in steps[len(self._earlier_steps) :])
        self._earlier_steps = steps
        return self._earlier

    def pooled_result(self, step: int) -> dict[str, float]:
        """`ARC/pooled/pass@K`: this evaluation's votes plus the pooled ones of steps before `step`,
        over the scored tasks; `ARC/pooled/num_evaluations`: the evaluations pooled (this one included)."""
        earlier = self._pool_before(step)
        pooled = ARCVoteStore()
        pooled.merge([earlier.state(), self.votes.state()])
        res = pooled.result(self.scored_truth())
        out = {f"ARC/pooled/pass@{k}": res[f"ARC/pass@{k}"] for k in pooled.pass_ks}
        out["ARC/pooled/num_evaluations"] = float(len(self._earlier_steps) + 1)
        return out

    def commit(self, step: int) -> dict:
        """Adds this evaluation's votes to the pool under `step` and returns them (to store)."""
        if int(step) in self._earlier_steps:  # a re-evaluated step replaces votes already merged
            self._earlier, self._earlier_steps = ARCVoteStore(), ()
        self.pool[int(step)] = self.votes.state()
        return self.pool[int(step)]

    def record(self, step: int, rundir) -> dict[str, float]:
        """`pooled_result(step)`, then this evaluation's votes stored under `step` in the pool and in
        `rundir` (`RunDir.write_arc_votes`)."""
        pooled = self.pooled_result(step)
        rundir.write_arc_votes(step, self.commit(step))
        return pooled

    def write(self, step: int, rundir) -> None:
        """This checkpoint's Kaggle submission over the scored tasks (`RunDir.submission(step)`)."""
        self.votes.write_submission(rundir.submission(step), self.scored_truth())

    def log_line(self, metrics: dict) -> str:
        nan = float("nan")
        n = int(metrics.get("ARC/pooled/num_evaluations", 0))
        return (
            "ARC/pooled/pass@2 {:.4f} (votes of {:d} evaluation{}, the paper's pass@2), ARC/pass@2 "
            "{:.4f} (this checkpoint) over {:d} tasks".format(
                metrics.get("ARC/pooled/pass@2", nan),
                n,
                "" if n == 1 else "s",
                metrics.get("ARC/pass@2", nan),
                int(metrics.get("ARC/num_tasks", 0)),
            )
        )
