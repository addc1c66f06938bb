"""Evaluators: the metrics of an evaluation, named by the config's `eval.evaluators` list.

`EVALUATORS` maps each name to its class, every class implementing the interface of
`trm_tf.evaluators.base.Evaluator`: `"accuracy"` (`trm_tf.evaluators.accuracy`: token, exact and
per-supervision-step accuracy) and `"arc"` (`trm_tf.evaluators.arc`: ARC pass@K voting, this checkpoint's
and pooled over the run's evaluations). `from_config` builds a run's evaluators in the config's order;
each declares what it reads on the host, and `Trainer.evaluate` sends the union of it in one fetch per
batch. A new evaluator is a class implementing the interface and one entry here.
"""

from __future__ import annotations

from collections.abc import Sequence

from trm_tf.evaluators import accuracy, arc, base

EVALUATORS: dict[str, type[base.Evaluator]] = {
    e.name: e for e in (accuracy.AccuracyEvaluator, arc.ARCEvaluator)
}


def check_config(config) -> None:
    """Checks `config.eval.evaluators` and what each evaluator it names needs of the config (one line;
    `launch.py` calls it next to `configs.base.validate`, before anything is built)."""
    _classes(config)


def _classes(config) -> list[type[base.Evaluator]]:
    """The evaluator classes `config.eval.evaluators` names, in its order, each having checked the
    config (`Evaluator.check_config`).

    Raises:
      ValueError: one line, for a name that is not in EVALUATORS (configs/ cannot import this registry,
        so the name is checked here), a name given twice, or a config one of the evaluators cannot run
        with.
    """
    names = config.eval.evaluators  # a non-empty tuple of strings (configs/validation.py)
    for name in names:
        if name not in EVALUATORS:
            raise ValueError(
                f"eval.evaluators: unknown evaluator {name!r}; known: {sorted(EVALUATORS)} (on the "
                "command line: --config.eval.evaluators=\"('accuracy','arc')\")"
            )
    if len(set(names)) < len(names):
        raise ValueError(f"eval.evaluators names an evaluator twice: {tuple(names)}")
    out = [EVALUATORS[name] for name in names]
    for cls in out:
        cls.check_config(config)
    return out


def from_config(config, spec, halt_max_steps: int) -> list[base.Evaluator]:
    """The evaluators of `config.eval.evaluators` for a run on the dataset `spec`, in the config's order."""
    return [cls.from_config(config, spec, halt_max_steps) for cls in _classes(config)]


def device_features(evaluators) -> tuple[str, ...]:
    """Extra integer features the evaluators need in each eval batch (e.g. ARC's task ids)."""
    return tuple(dict.fromkeys(f for e in evaluators for f in e.features))


def task_names(evaluators) -> Sequence[str] | None:
    """The sorted task names the eval stream maps to `task_id` (None when no evaluator needs them).

    Raises:
      ValueError: two evaluators number the tasks differently.
    """
    named = [e.task_names for e in evaluators if e.task_names is not None]
    if any(list(n) != list(named[0]) for n in named[1:]):
        raise ValueError("the evaluators number the tasks of the eval stream differently")
    return named[0] if named else None


def periodic_tasks(evaluators) -> dict[str, int] | None:
    """The tasks a partial evaluation reads (task -> bound on its rows), None for no task subset.

    Raises:
      ValueError: two evaluators ask for different task subsets.
    """
    subsets = [e.periodic_tasks for e in evaluators if e.periodic_tasks is not None]
    if any(s != subsets[0] for s in subsets[1:]):
        raise ValueError("the evaluators ask periodic evaluations for different task subsets")
    return subsets[0] if subsets else None


__all__ = [
    "EVALUATORS",
    "check_config",
    "device_features",
    "from_config",
    "periodic_tasks",
    "task_names",
]
