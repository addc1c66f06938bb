"""The loop report's host side: the normalisation of the logs, bit for bit the reference's TF maths."""

import numpy as np
import tensorflow as tf

from trm_tf import losses
from trm_tf.metrics import TRAIN_SUM_KEYS, LoopReport, MetricSums


def test_host_normalisation_is_bitwise_the_tf_one():
    """The logs' normalisation runs on the host in NumPy; it gives the float32 graph maths' values."""
    rng = np.random.default_rng(0)
    for count in (0.0, 1.0, 7.0, 12345.0):
        sums = {k: float(rng.uniform(0, 1e4)) / 3.0 for k in TRAIN_SUM_KEYS}
        sums["count"] = count
        c = tf.maximum(tf.cast(sums["count"], tf.float32), 1.0)
        want = {
            k: float(tf.cast(v, tf.float32) / (768.0 if k.endswith("loss") else c))
            for k, v in sums.items()
        }
        got = {k: float(v) for k, v in losses.normalize_train_metrics(sums, 768).items()}
        assert got == want


def test_report_is_one_vector_of_the_sums_norm_flag_and_lr():
    strategy = tf.distribute.get_strategy()
    m = MetricSums()
    step = tf.Variable(3, dtype=tf.int64)
    report = m.report_fn(strategy, lambda: tf.cast(step.read_value(), tf.float32) / 10.0)
    sums = {k: tf.constant(float(i + 1)) for i, k in enumerate(TRAIN_SUM_KEYS)}
    m.add(sums, tf.constant(2.5))
    m.add(sums, tf.constant(0.5))
    r = LoopReport(tuple(m.sums), report(tf.constant(1.0)).numpy())
    assert r.values.shape == (len(TRAIN_SUM_KEYS) + 3,)
    assert r.loss_sum == 2.0 * (TRAIN_SUM_KEYS.index("loss") + 1) and r.finite and r.stop
    assert r.lr == np.float32(0.3)
    metrics = r.metrics(2, 4)
    assert metrics["grad_norm"] == 1.5 and metrics["halted_examples"] == 2.0
    assert metrics["loss"] == 2.0 * 8 / 2 / 4  # per step, per global-batch example
    assert metrics["accuracy"] == 2.0 * 2 / 2.0  # per halted example
    m.reset_fn()()
    r = LoopReport(tuple(m.sums), report(tf.constant(0.0)).numpy())
    assert not r.stop and r.loss_sum == 0.0
