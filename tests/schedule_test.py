"""Tests for trm_tf.schedule: the reference learning-rate schedule (docs/model.md#optimizers)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from trm_tf import optim
from trm_tf.schedule import WarmupCosine, lr_at_step


def test_lr_warmup_constant_and_cosine():
    base, warm, total = 1e-4, 2000, 65104
    lr = lambda s, r=1.0: float(lr_at_step(s, base, warm, total, r))  # noqa: E731
    assert lr(1) == pytest.approx(base / warm, rel=1e-6)
    assert lr(warm - 1) == pytest.approx(base * (warm - 1) / warm, rel=1e-6)
    assert lr(warm) == pytest.approx(base, rel=1e-7)
    # min_ratio = 1 (reference default): exactly constant after warmup.
    assert {lr(s) for s in (warm, warm + 1, 30000, total, total + 10)} == {np.float32(base).item()}
    # Cosine endpoints with min_ratio < 1.
    assert lr(warm, 0.1) == pytest.approx(base, rel=1e-6)
    assert lr(total, 0.1) == pytest.approx(0.1 * base, rel=1e-5)
    mid = warm + (total - warm) // 2
    assert lr(mid, 0.1) == pytest.approx(base * (0.1 + 0.9 * 0.5), rel=1e-4)
    # No warmup: full LR from step 1.
    assert float(lr_at_step(1, base, 0, 100, 1.0)) == pytest.approx(base)


def test_warmup_cosine_schedule_uses_iterations_plus_one():
    sched = WarmupCosine(1e-3, 10, 100, 0.0)
    assert float(sched(0)) == pytest.approx(1e-4, rel=1e-6)  # iterations 0 -> step 1
    assert float(sched(9)) == pytest.approx(1e-3, rel=1e-6)  # step 10 = end of warmup
    assert float(sched(99)) == pytest.approx(0.0, abs=1e-9)
    again = WarmupCosine.from_config(sched.get_config())
    assert float(again(42)) == float(sched(42))
    # Inside a Keras optimizer: the first update uses step 1.
    w = keras.Variable(np.zeros(3, np.float32))
    opt = optim.AdamATan2(sched, weight_decay=0.0)
    opt.apply([tf.constant([1.0, -2.0, 0.0])], [w])
    np.testing.assert_allclose(
        w.numpy(), [-1e-4 * 10 * math.atan(0.1), 1e-4 * 10 * math.atan(0.1), 0], rtol=1e-6
    )
