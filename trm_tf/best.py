"""The best checkpoint and early stopping: after every evaluation, compare a metric with the best so far.

`BestCheckpoint(...)(step, metrics)` is called with each evaluation of the run's own weights (periodic and
final; not the checkpoint average). On a new best it writes the state as `workdir/best/ckpt-<step>`
(`CheckpointIO.save_best`, every host's carry included, so the best restores exactly like a resume) and
records it in run_summary.json:

    "best": {"metric": "exact_accuracy", "value": 0.87, "step": 4000, "mode": "max",
             "full": false, "num_examples": 4096, "evaluations_since": 0}

`full`/`num_examples` say which rows decided it (a periodic evaluation reads a subset of the test split).
The metric is `eval.best_metric`, "auto" meaning the task's headline (`headline_metric`); metrics with
"loss" in their name are minimised. With `train.early_stop_evals = K > 0`, `stop_requested` turns true
once K evaluations in a row brought no new best.

Several worker processes (MultiWorkerMirrored) must save together: the chief's decision is broadcast to
every process with one small all-reduce, so all of them write or none does. A single client (a TPU pod's
worker 0, one CPU) makes no such call.
"""

from __future__ import annotations

import math

import tensorflow as tf
from absl import logging

from trm_tf import distribute

ARC_HEADLINE = "ARC/pass@2"
DEFAULT_HEADLINE = "exact_accuracy"


def headline_metric(config, metrics: dict | None = None) -> str:
    """`eval.best_metric`, with "auto" resolved: `ARC/pass@2` (this checkpoint's own votes; the pooled
    figure mixes every earlier checkpoint's votes, so it cannot pick one) for ARC runs, else
    `exact_accuracy`."""
    name = str(config.eval.get("best_metric", "auto"))
    if name != "auto":
        return name
    arc = (
        "arc" in tuple(config.eval.get("evaluators", ()))
        or (metrics or {}).get(ARC_HEADLINE) is not None
    )
    return ARC_HEADLINE if arc else DEFAULT_HEADLINE


def minimised(metric: str) -> bool:
    return "loss" in metric


class BestCheckpoint:
    """Keeps the best checkpoint of a run and counts evaluations without improvement (see the module)."""

    def __init__(self, config, ckpt, rundir, strategy, previous: dict | None = None):
        self.config, self.ckpt, self.rundir, self.strategy = config, ckpt, rundir, strategy
        self.patience = int(config.train.get("early_stop_evals", 0))
        self.record: dict = dict((previous or {}).get("best") or {})
        # A resume keeps the best only if its checkpoint is still there (a record without one restarts).
        if self.record and ckpt.best_step() != self.record.get("step"):
            self.record = {}
        self._warned = False

    @property
    def metric(self) -> str:
        return self.record.get("metric") or headline_metric(self.config)

    def __call__(self, step: int, metrics: dict, full: bool = False) -> bool:
        """Compares `metrics[metric]` of the evaluation at `step` (`full`: on the whole test split) with
        the best; saves on improvement. Returns whether it was a new best."""
        metric = headline_metric(self.config, metrics)
        value = metrics.get(metric)
        if value is None or not math.isfinite(float(value)):
            if not self._warned:
                logging.warning(
                    "eval.best_metric %r is not among the evaluation's metrics (%s); no best checkpoint",
                    metric,
                    ", ".join(sorted(k for k in metrics if "/step_" not in k)),
                )
                self._warned = True
            return False
        value = float(value)
        best = self.record.get("value")
        better = best is None or (value < best if minimised(metric) else value > best)
        better = self._agreed(better)
        if better:
            self.ckpt.save_best(step)
            self.record = {
                "metric": metric,
                "value": value,
                "step": int(step),
                "mode": "min" if minimised(metric) else "max",
                "full": bool(full),
                "num_examples": int(metrics.get("num_examples", 0)),
                "evaluations_since": 0,
            }
            logging.info("New best %s %.4f at step %d (workdir/best)", metric, value, step)
        else:
            self.record["evaluations_since"] = int(self.record.get("evaluations_since", 0)) + 1
        self.rundir.update_summary(best=dict(self.record))
        return better

    def _agreed(self, better: bool) -> bool:
        """The chief's decision on every process (one all-reduce; none with a single client)."""
        if distribute.num_workers(self.strategy) <= 1:
            return better
        chief = distribute.is_chief(self.strategy)

        mine = 1.0 if (chief and better) else 0.0

        def flag():
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            return tf.where(tf.equal(rid, 0), mine, 0.0)  # replica 0 lives on the chief

        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(flag), axis=None)
        return bool(total.numpy() > 0.5)

    def stop_requested(self) -> bool:
        """Whether `train.early_stop_evals` evaluations in a row brought no new best."""
        return self.patience > 0 and int(self.record.get("evaluations_since", 0)) >= self.patience
