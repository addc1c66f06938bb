"""Training metric sums: per-replica SUM variables written by the compiled step, read between loops.

The step adds the batch sums of one supervision step (`losses` returns sums, not means); the outer loop
reads them once per logging window and normalises them as the reference logs them
(`losses.normalize_train_metrics`: "*loss" keys per step and per global-batch example, the others per
halted example), then resets them.
"""

from __future__ import annotations

import tensorflow as tf

from trm_tf import losses, optim

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

    def reset(self) -> None:
        for v in [*self.sums.values(), self.grad_norm]:
            v.assign(tf.zeros_like(v.read_value()))

    def loss_sum(self) -> float:
        """The summed loss since the last reset (one scalar read: the NaN guard's probe)."""
        return float(self.sums["loss"].read_value())

    def read(self, num_steps: int, global_batch: int) -> dict[str, float]:
        """The window's metrics, normalised as the reference logs them."""
        steps = max(num_steps, 1)
        raw = {k: float(v.read_value()) for k, v in self.sums.items()}
        per_step = {k: (v / steps if k.endswith("loss") else v) for k, v in raw.items()}
        out = {
            k: float(v)
            for k, v in losses.normalize_train_metrics(per_step, global_batch).items()
            if k != "count"
        }
        out["halted_examples"] = raw["count"]
        out["grad_norm"] = float(self.grad_norm.read_value()) / steps
        return out


def learning_rates(optim_config, step: int, total_steps: int) -> dict[str, float]:
    """The dense and puzzle-embedding learning rates at `step` (for the logs)."""
    o = optim_config
    lr = float(optim.lr_at_step(step, o.lr, o.lr_warmup_steps, total_steps, o.lr_min_ratio))
    return {"lr": lr, "puzzle_emb_lr": lr * (o.puzzle_emb_lr / o.lr if o.lr else 0.0)}
