"""The evaluator interface: everything `Trainer.evaluate` and `train.Evaluation` call on an evaluator.

An evaluator is one family of metrics of an evaluation (token and exact accuracy, ARC pass@K, ...). A run
uses the evaluators its config names (`eval.evaluators`, e.g. `("accuracy", "arc")`; the registry
`trm_tf.evaluators.EVALUATORS` maps each name to its class), side by side: the eval step computes and
sends what any of them reads, each gets every batch, and the evaluation's metrics are the union of their
results. The hooks, in the order they are called:

* checking the config (before anything is built): `check_config(config)`, one line for a config the
  evaluator cannot run with (e.g. ARC voting on a dataset that is not ARC);
* construction: `from_config(config, spec, halt_max_steps)`;
* what it reads on the host, so that the eval step computes and sends only that, in ONE device-to-host
  fetch per batch (`Trainer.evaluate`): `features` (extra integer features the eval stream must carry,
  `trm_tf.data.eval_input`), `summed` (eval-step outputs that are sums over rows: `sums`,
  `exact_per_step`, `token_per_step`), `rows` (per-row fields: outputs such as `preds`, `q_halt`, or
  batch features such as `mask`, `inputs`, `task_id`) and `task_names` (the names `task_id` indexes);
* what a partial (periodic) evaluation reads: `whole_tasks` and `periodic_tasks` (below), and
  `select_tasks(tasks)` before each evaluation of the run: the tasks it reads (None: every row);
* the state kept across the run's evaluations: `restore(rundir, step)`, once, before the run's first
  evaluation (what earlier evaluations stored in the run directory, up to the restored checkpoint);
* one evaluation (`Trainer.evaluate`): `begin()`; `update(out)` once per batch with this process's share
  as numpy (each `summed` output with a leading axis over this process's replicas, their partial sums in
  replica order, to be added up; each `rows` field with the rows of this process's replicas concatenated
  in replica order, padding rows included with `mask` False); `reduce(strategy)`, which merges what each
  worker process holds through the strategy's collectives; `result()`, a flat dict of floats;
* after an evaluation of the run's weights (not of a checkpoint average), in `train.Evaluation`:
  `record(step, rundir)` adds it to the state kept across evaluations (stored in the run directory) and
  returns metrics over that state; then, on the process that writes the run directory only,
  `write(step, rundir)` writes the evaluation's files (e.g. ARC's Kaggle submission).

Metric names must not collide between evaluators (each prefixes its own, e.g. `ARC/`). Each names its
`headline` metric (the one the paper reports for its task) and writes its part of the evaluation's log
line (`log_line`); the line leads with the last evaluator's headline (ARC after accuracy: the pooled
pass@2).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence


class Evaluator(abc.ABC):
    """One family of metrics; the defaults are those of an evaluator that only sums (accuracy)."""

    name: str = ""  # its name in `eval.evaluators`
    features: tuple[str, ...] = ()
    summed: tuple[str, ...] = ()
    rows: tuple[str, ...] = ()
    task_names: Sequence[str] | None = None
    # True: a partial evaluation must not cut a task (ARC votes over every augmented copy of a test pair):
    # it reads every row of `periodic_tasks`, or, when that is None, the whole test split (it is then a
    # full evaluation). False: it may read the first `eval.subset_size` rows.
    whole_tasks: bool = False
    # The tasks every partial evaluation reads, the same each time: task -> upper bound on its rows
    # (`eval_input.make_eval_dataset(tasks=...)`); None: no subset of tasks.
    periodic_tasks: dict[str, int] | None = None
    # The metric the paper reports for this evaluator's task (None: none).
    headline: str | None = None

    @classmethod  # noqa: B027  (optional: nothing by default)
    def check_config(cls, config) -> None:
        """Raises ValueError (one line) when `config` asks for something this evaluator cannot do."""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config, spec, halt_max_steps: int) -> Evaluator:
        """The evaluator of a run of `config` on the dataset `spec` (a `trm_tf.data.datasets` spec),
        evaluated with `halt_max_steps` supervision steps."""
        raise NotImplementedError

    def select_tasks(self, tasks: Collection[str] | None) -> None:  # noqa: B027  (optional: nothing by default)
        """The tasks the next evaluations read (None: every row of the test split)."""

    def restore(self, rundir, step: int) -> None:  # noqa: B027  (optional: nothing by default)
        """Loads the state earlier evaluations of the run stored in `rundir` up to `step` (the restored
        checkpoint) and forgets (deletes, on the writer) what they stored for later steps."""

    @abc.abstractmethod
    def begin(self) -> None: ...

    @abc.abstractmethod
    def update(self, out: dict) -> None: ...

    @abc.abstractmethod
    def reduce(self, strategy) -> None: ...

    @abc.abstractmethod
    def result(self) -> dict[str, float]: ...

    def record(self, step: int, rundir) -> dict[str, float]:
        """Adds this evaluation (of the checkpoint at `step`) to the state kept across the run's
        evaluations, stores that in `rundir`, and returns the metrics over it ({} without state)."""
        return {}

    def write(self, step: int, rundir) -> None:  # noqa: B027  (optional: nothing by default)
        """Writes this evaluation's files into `rundir` (called on the run directory's writer only)."""

    def log_line(self, metrics: dict) -> str:
        """This evaluator's part of the evaluation's log line ("" for none)."""
        return ""
