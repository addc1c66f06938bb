"""Tests for trm_tf.ema: the EMA of the dense parameters (docs/model.md#ema), on one device and under
MirroredStrategy over the two logical CPUs set up by conftest.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trm_tf.ema import EMA


@pytest.fixture(scope="module")
def mirrored():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _replica_values(v):
    """All per-device copies of a (possibly mirrored, possibly keras) variable as numpy arrays."""
    v = v.value if isinstance(v, keras.Variable) else v
    comps = getattr(v, "values", None)
    return [np.asarray(c.numpy()) for c in comps] if comps is not None else [v.numpy()]


def test_ema_closed_form_swap_and_checkpoint(tmp_path):
    p0 = np.array([1.0, -2.0, 3.0], np.float32)
    p1 = np.array([0.5, 4.0, -1.0], np.float32)
    w = keras.Variable(p0)
    ema = EMA([w], rate=0.9)
    w.assign(p1)
    update = tf.function(ema.update)
    for _ in range(5):
        update()
    shadow = ema.shadows[0].numpy()
    np.testing.assert_allclose(shadow, p1 + 0.9**5 * (p0 - p1), rtol=1e-6)

    ema.swap()
    np.testing.assert_array_equal(w.numpy(), shadow)
    np.testing.assert_array_equal(ema.shadows[0].numpy(), p1)
    tf.function(ema.swap)()
    np.testing.assert_array_equal(w.numpy(), p1)
    np.testing.assert_array_equal(ema.shadows[0].numpy(), shadow)

    other = keras.Variable(np.zeros(3, np.float32))
    ema.copy_to([other])
    np.testing.assert_array_equal(other.numpy(), shadow)

    path = tf.train.Checkpoint(ema=ema).save(str(tmp_path / "ema"))
    # Only the shadows are saved (not the live parameters).
    names = [n for n, _ in tf.train.list_variables(path)]
    assert sum("shadow" in n for n in names) == 1
    ema.assign_from()
    np.testing.assert_array_equal(ema.shadows[0].numpy(), p1)
    tf.train.Checkpoint(ema=ema).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(ema.shadows[0].numpy(), shadow)


def test_ema_mirrored_replica_and_cross_replica(mirrored):
    p0 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    p1 = np.array([[0.0, -1.0], [2.0, 8.0]], np.float32)
    with mirrored.scope():
        w = keras.Variable(p0)
        ema = EMA([w], rate=0.99)

    @tf.function
    def replica_update():
        mirrored.run(ema.update)

    w.assign(p1)
    for _ in range(3):
        replica_update()
    tf.function(ema.update)()  # cross-replica context
    ema.update()  # eager, cross-replica
    want = p1 + 0.99**5 * (p0 - p1)
    for c in _replica_values(ema.shadows[0]):
        np.testing.assert_allclose(c, want, rtol=1e-6)

    @tf.function
    def swap_in_replica():
        mirrored.run(ema.swap)

    swap_in_replica()
    for c in _replica_values(w):
        np.testing.assert_allclose(c, want, rtol=1e-6)
    ema.swap()
    for c in _replica_values(w):
        np.testing.assert_array_equal(c, p1)


def test_ema_swap_compiled_once_and_exact_under_mirrored(mirrored):
    rng = np.random.default_rng(5)
    p0 = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    with mirrored.scope():
        ws = [keras.Variable(x) for x in p0]
        ema = EMA(ws, rate=0.9)
    for w, x in zip(ws, p0):
        w.assign(x * 3.0 + 1.0)  # live values differ from the shadows
    ema.update()
    live = [_replica_values(w) for w in ws]
    shadow = [_replica_values(s) for s in ema.shadows]
    assert not np.array_equal(live[0][0], shadow[0][0])

    ema.swap()
    for w, s, want_w, want_s in zip(ws, ema.shadows, shadow, live):
        for got, want in zip(_replica_values(w) + _replica_values(s), want_w + want_s):
            np.testing.assert_array_equal(got, want)
    ema.swap()
    for w, s, want_w, want_s in zip(ws, ema.shadows, live, shadow):
        for got, want in zip(_replica_values(w) + _replica_values(s), want_w + want_s):
            np.testing.assert_array_equal(got, want)
    ema.swap()
    ema.swap()
    # One compiled function, traced on the first call and reused by every later one.
    assert ema._swap_fn is not None
    assert ema._swap_fn.experimental_get_tracing_count() == 1
    for w, want in zip(ws, live):
        for got, c in zip(_replica_values(w), want):
            np.testing.assert_array_equal(got, c)
