"""The reference learning-rate schedule: linear warmup, then cosine decay to a floor (step counted from 1).

`lr_at_step` is the formula (used by the trainer for the puzzle-embedding rate and by the logs);
`WarmupCosine` wraps it as the Keras schedule of the dense optimizer.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def lr_at_step(
    step, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 1.0
) -> tf.Tensor:
    """The reference LR at 1-based `step` (pretrain.py `cosine_schedule_with_warmup_lr_lambda`).

    lr = base·step/warmup while step < warmup; afterwards
    lr = base·(r + max(0, (1−r)·0.5·(1 + cos(π·progress)))), progress = (step−warmup)/(total−warmup).
    With r = min_ratio = 1 (the reference default) the LR is exactly `base_lr` after warmup.

    Args:
      step: 1-based step (int or scalar tensor); the first training batch uses step 1.
      base_lr: peak learning rate.
      warmup_steps: linear warmup length (0 disables warmup).
      total_steps: total training steps (the cosine reaches r at this step).
      min_ratio: final LR as a fraction of base_lr.

    Returns:
      float32 scalar tensor.
    """
    step = tf.cast(step, tf.float32)
    base = tf.constant(base_lr, tf.float32)
    r = tf.constant(min_ratio, tf.float32)
    warm = base * step / float(max(1, warmup_steps))
    progress = (step - float(warmup_steps)) / float(max(1, total_steps - warmup_steps))
    cosine = base * (r + tf.maximum(0.0, (1.0 - r) * 0.5 * (1.0 + tf.cos(math.pi * progress))))
    return tf.where(step < float(warmup_steps), warm, cosine)


@keras.saving.register_keras_serializable(package="trm_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """`lr_at_step` as a Keras schedule; `iterations` counts from 0, so step = iterations + 1."""

    def __init__(self, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 1.0):
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, iterations):
        step = tf.cast(iterations, tf.float32) + 1.0
        return lr_at_step(step, self.base_lr, self.warmup_steps, self.total_steps, self.min_ratio)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "min_ratio": self.min_ratio,
        }
