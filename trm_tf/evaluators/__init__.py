"""Evaluators: objects with `begin` / `update` / `reduce` / `result`, built from the config.

`from_config(config, spec, halt_max_steps)` returns the accuracy evaluator, plus ARC voting when
`config.eval.evaluator == "arc"` (`trm_tf.evaluators.arc_voting.ARCVoting`: this checkpoint's pass@K and
pass@K pooled over the run's evaluations). Each evaluator declares what it reads on the host (`features`,
`summed`, `rows`: the life cycle in `trm_tf.evaluators.accuracy`), and `Trainer.evaluate` sends only that,
in one fetch per batch.
"""

from __future__ import annotations

from trm_tf.evaluators.accuracy import AccuracyEvaluator


def from_config(config, spec, halt_max_steps: int) -> list:
    """The evaluators a run uses: accuracy always, ARC voting for `eval.evaluator = "arc"`."""
    evaluators: list = [AccuracyEvaluator(halt_max_steps)]
    kind = config.eval.evaluator
    if kind == "arc":
        from trm_tf.evaluators.arc_voting import ARCVoting

        evaluators.append(ARCVoting.for_dataset(spec))
    elif kind:
        raise ValueError(f"eval.evaluator must be '' or 'arc', got {kind!r}")
    return evaluators


def device_features(evaluators) -> tuple[str, ...]:
    """Extra integer features the evaluators need in each eval batch (e.g. ARC's task ids)."""
    out: list[str] = []
    for e in evaluators:
        out += [f for f in getattr(e, "features", ()) if f not in out]
    return tuple(out)


def task_names(evaluators):
    """The sorted task names the eval stream maps to `task_id` (None when no evaluator needs them)."""
    for e in evaluators:
        if getattr(e, "task_names", None) is not None:
            return e.task_names
    return None


__all__ = ["AccuracyEvaluator", "device_features", "from_config", "task_names"]
