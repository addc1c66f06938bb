"""Training metric sums: per-replica SUM variables written by the compiled step, read between loops.

The step adds the batch sums of one supervision step (`losses` returns sums, not means). After every
compiled loop the outer loop fetches ONE vector (`MetricSums.report_fn`): every sum and the gradient norm
reduced over the replicas in the graph and stacked, with the preemption flag of every worker process summed
in (a host copy: `LoopReport`). The NaN guard, the log and the preemption stop read that copy; the log
normalises it as the reference logs them (`losses.normalize_train_metrics`: "*loss" keys per step and per
global-batch example, the others per halted example), then the sums are reset (`reset_fn`, no fetch).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from trm_tf import losses
from trm_tf.schedule import lr_at_step

TRAIN_SUM_KEYS = (
    "count",
    "accuracy",
    "exact_accuracy",
    "q_halt_accuracy",
    "steps",
    "lm_loss",
    "q_halt_loss",
    "loss",
)


def _sum_var(name, aggregation=tf.VariableAggregation.SUM):
    return tf.Variable(
        tf.zeros([], tf.float32),
        trainable=False,
        name=name,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=aggregation,
    )


class MetricSums:
    """Sum variables of the training metrics and of the gradient norm. Create under `strategy.scope()`."""

    def __init__(self, keys=TRAIN_SUM_KEYS):
        self.sums = {k: _sum_var(k) for k in keys}
        # The norm is of the all-reduced gradient: identical on every replica, so only replica 0 counts.
        self.grad_norm = _sum_var(
            "grad_norm", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
        )

    def add(self, sums: dict, grad_norm) -> None:
        """In replica context: adds one step's batch sums and gradient norm."""
        for k, v in self.sums.items():
            v.assign_add(tf.cast(sums[k], tf.float32))
        self.grad_norm.assign_add(grad_norm)

    def reset_fn(self):
        """A compiled function that zeroes every sum (cross-replica context; no fetch)."""
        variables = [*self.sums.values(), self.grad_norm]

        @tf.function
        def reset():
            for v in variables:
                v.assign(tf.zeros([], tf.float32))

        return reset

    def report_fn(self, strategy, lr_fn):
        """A compiled function `report(flag) -> float32[len(keys) + 3]`: the sums since the last reset
        (in `self.sums` order), the gradient norm's sum, the sum of `flag` (this process's preemption
        flag, 0 or 1) over every replica of every worker process, and `lr_fn()` (the learning rate at the
        current step, the same ops the logs computed eagerly before). Each replica stacks its own values,
        one SUM reduction adds them (elementwise the same adds as reading each variable), so the whole
        report is one reduction and one fetch."""
        sums, grad_norm = list(self.sums.values()), self.grad_norm

        def local(flag):
            first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
            # The norm is identical on every replica: counted once (the variable's ONLY_FIRST_REPLICA).
            norm = tf.where(first, grad_norm.read_value(), 0.0)
            return tf.stack([v.read_value() for v in sums] + [norm, flag])

        @tf.function
        def report(flag):
            per_replica = strategy.run(local, args=(flag,))
            reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return tf.concat([reduced, tf.reshape(tf.cast(lr_fn(), tf.float32), [1])], 0)

        return report


@dataclasses.dataclass(frozen=True)
class LoopReport:
    """The host copy of one loop's report (see `MetricSums.report_fn`)."""

    keys: tuple
    values: np.ndarray

    @property
    def loss_sum(self) -> float:
        """The summed loss since the last reset (the NaN guard's probe)."""
        return float(self.values[self.keys.index("loss")])

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss_sum)

    @property
    def stop(self) -> bool:
        """Some worker process received a preemption signal."""
        return float(self.values[len(self.keys) + 1]) > 0

    @property
    def lr(self) -> float:
        """The dense learning rate at the step the report was made."""
        return float(self.values[len(self.keys) + 2])

    def metrics(self, num_steps: int, global_batch: int) -> dict[str, float]:
        """The window's metrics, normalised as the reference logs them (`normalize`)."""
        steps = max(num_steps, 1)
        raw = {k: float(self.values[i]) for i, k in enumerate(self.keys)}
        per_step = {k: (v / steps if k.endswith("loss") else v) for k, v in raw.items()}
        out = {
            k: float(v)
            for k, v in losses.normalize_train_metrics(per_step, global_batch).items()
            if k != "count"
        }
        out["halted_examples"] = raw["count"]
        out["grad_norm"] = float(self.values[len(self.keys)]) / steps
        return out


def learning_rate_fn(optim_config, step_variable, total_steps: int):
    """In-graph: the dense learning rate at `step_variable`'s value (`schedule.lr_at_step`, for the report)."""
    o = optim_config

    def lr():
        step = step_variable.read_value()
        return lr_at_step(step, o.lr, o.lr_warmup_steps, total_steps, o.lr_min_ratio)

    return lr


def learning_rates(optim_config, lr: float) -> dict[str, float]:
    """The dense and puzzle-embedding learning rates for the logs, from the dense one (host maths)."""
    o = optim_config
    return {"lr": lr, "puzzle_emb_lr": lr * (o.puzzle_emb_lr / o.lr if o.lr else 0.0)}
