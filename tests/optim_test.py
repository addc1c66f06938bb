"""Tests for trm_tf.optim: AdamATan2, SparseSignSGD and the trainer-shaped update under a strategy
(docs/model.md#optimizers; the EMA and the schedule have their own test files).

Distributed cases run on MirroredStrategy over the two logical CPUs set up by conftest.py and are
compared with the default-strategy run on the full batch.
"""

import math

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from trm_tf import optim
from trm_tf.ema import EMA
from trm_tf.schedule import WarmupCosine, lr_at_step

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def mirrored():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _np_adam_atan2(p, grads, lr, wd, b1=0.9, b2=0.95, decay_first=True):
    """Float64 numpy transcription of docs/model.md#adamatan2 (the adam-atan2 0.0.3 kernel)."""
    p = np.array(p, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if decay_first:
            p = p * (1 - lr * wd)
        m = m + (1 - b1) * (g - m)
        v = v + (1 - b2) * (g * g - v)
        p = p - lr / (1 - b1**t) * np.arctan2(m, np.sqrt(v) / np.sqrt(1 - b2**t))
        if not decay_first:
            p = p * (1 - lr * wd)
    return p


def _split(strategy, arr):
    """Per-replica halves of `arr` along axis 0, as distributed values."""
    n = strategy.num_replicas_in_sync
    k = arr.shape[0] // n
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(
            arr[ctx.replica_id_in_sync_group * k : (ctx.replica_id_in_sync_group + 1) * k]
        )
    )


def _replica_values(v):
    """All per-device copies of a (possibly mirrored, possibly keras) variable as numpy arrays."""
    v = v.value if isinstance(v, keras.Variable) else v
    comps = getattr(v, "values", None)
    return [np.asarray(c.numpy()) for c in comps] if comps is not None else [v.numpy()]


# ----------------------------------------------------------------------------- AdamATan2


def test_adam_atan2_first_step_is_scaled_sign():
    g = np.array([[0.3, -1e-3], [5.0, 0.0]], np.float32)
    w = keras.Variable(np.ones((2, 2), np.float32))
    opt = optim.AdamATan2(1e-2, weight_decay=0.0)
    opt.apply([tf.constant(g)], [w])
    expected = 1.0 - 1e-2 * 10 * math.atan(0.1) * np.sign(g)
    np.testing.assert_allclose(w.numpy(), expected, rtol=0, atol=1e-7)
    assert 10 * math.atan(0.1) == pytest.approx(0.99668652)


def test_adam_atan2_three_steps_and_decay_order():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    lr, wd = 0.1, 0.5  # large lr·wd makes the decay order visible
    w = tf.Variable(p0)  # plain tf.Variable also supported
    opt = optim.AdamATan2(lr, weight_decay=wd)
    for g in grads:
        opt.apply([tf.constant(g)], [w])
    want = _np_adam_atan2(p0, grads, lr, wd)
    wrong_order = _np_adam_atan2(p0, grads, lr, wd, decay_first=False)
    np.testing.assert_allclose(w.numpy(), want, rtol=0, atol=2e-6)
    assert np.abs(want - wrong_order).max() > 1e-3
    assert int(opt.iterations.numpy()) == 3
    # Single step too.
    w1 = tf.Variable(p0)
    opt1 = optim.AdamATan2(lr, weight_decay=wd)
    opt1.apply([tf.constant(grads[0])], [w1])
    np.testing.assert_allclose(w1.numpy(), _np_adam_atan2(p0, grads[:1], lr, wd), atol=1e-6)


def test_adam_atan2_checkpoint_roundtrip(tmp_path):
    w = keras.Variable(np.ones(3, np.float32))
    opt = optim.AdamATan2(1e-2, weight_decay=0.1)
    opt.apply([tf.constant([1.0, 2.0, 3.0])], [w])
    path = tf.train.Checkpoint(optimizer=opt, w=w.value).save(str(tmp_path / "ck"))
    w2 = keras.Variable(np.zeros(3, np.float32))
    opt2 = optim.AdamATan2(1e-2, weight_decay=0.1)
    opt2.build([w2])
    tf.train.Checkpoint(optimizer=opt2, w=w2.value).restore(path).assert_existing_objects_matched()
    assert int(opt2.iterations.numpy()) == 1
    for a, b in zip(opt.variables, opt2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert optim.AdamATan2.from_config(opt.get_config()).decoupled_weight_decay == 0.1


def _adam_train(strategy, x, y, w0, steps=3):
    gb = x.shape[0]
    with strategy.scope():
        w = keras.Variable(w0, name="w")
        opt = optim.AdamATan2(WarmupCosine(0.05, 2, 10, 0.5), weight_decay=0.2)
        opt.build([w])

    @tf.function
    def step(xb, yb):
        def fn(xr, yr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.matmul(xr, w) - yr)) / gb
            opt.apply(tape.gradient(loss, [w]), [w])

        strategy.run(fn, args=(xb, yb))

    for _ in range(steps):
        if strategy.num_replicas_in_sync > 1:
            step(_split(strategy, x), _split(strategy, y))
        else:
            step(tf.constant(x), tf.constant(y))
    return w


def test_adam_atan2_mirrored_equals_single_device(mirrored):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    w0 = rng.normal(size=(5, 2)).astype(np.float32)
    single = _adam_train(tf.distribute.get_strategy(), x, y, w0).numpy()
    w_m = _adam_train(mirrored, x, y, w0)
    copies = _replica_values(w_m)
    assert len(copies) == 2
    for c in copies:
        np.testing.assert_allclose(c, single, rtol=0, atol=1e-6)
    assert np.abs(single - w0).max() > 1e-3  # it actually moved


def _optim_section(name: str, lr: float = 0.1, weight_decay: float = 0.5, **kw):
    """A `config.optim` section: by default constant `lr` (no warm-up, min ratio 1), the base betas."""
    return ml_collections.ConfigDict(
        {"lr_warmup_steps": 0, "lr_min_ratio": 1.0, "beta1": 0.9, "beta2": 0.95, **kw,
         "name": name, "lr": lr, "weight_decay": weight_decay}
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_make_optimizer_decay_matches_convention(name):
    # Zero gradient: Adam-type and Lion updates vanish (AdamATan2: atan2(0, 0) = 0), leaving only
    # the decoupled decay p·(1 − lr·wd).
    w = keras.Variable(np.full(3, 2.0, np.float32))
    opt = optim.make_optimizer(_optim_section(name), total_steps=10)
    opt.apply([tf.zeros(3)], [w])
    np.testing.assert_allclose(w.numpy(), 2.0 * (1 - 0.1 * 0.5), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_registered_slot_count_is_the_built_optimizers(name):
    # The memory estimate counts OPTIMIZERS[name].slots float32 copies of every weight: the optimizer,
    # built over two weights, holds exactly that many per weight besides its step counter (the learning
    # rate is the schedule, not a variable).
    ws = [keras.Variable(np.zeros((4, 3), np.float32)), keras.Variable(np.zeros(5, np.float32))]
    opt = optim.make_optimizer(_optim_section(name), total_steps=10)
    opt.build(ws)
    shaped = [v for v in opt.variables if tuple(v.shape) in ((4, 3), (5,))]
    assert len(shaped) == optim.OPTIMIZERS[name].slots * len(ws)
    assert [tuple(v.shape) for v in opt.variables if v.ndim == 0] == [()]  # + iterations
    assert len(opt.variables) == len(shaped) + 1


def test_make_optimizer_schedule_and_unknown_name():
    # The schedule is config.optim's: warm-up to lr, then cosine to lr * lr_min_ratio at total_steps.
    o = _optim_section("adamw", lr=0.2, lr_warmup_steps=4, lr_min_ratio=0.5)
    opt = optim.make_optimizer(o, total_steps=20)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.beta_2 == 0.95 and opt.epsilon == 1e-8
    lr = opt.learning_rate  # read at iterations = 0, i.e. step 1
    assert float(lr) == pytest.approx(0.2 * 1 / 4)
    assert float(opt._learning_rate(tf.constant(19))) == pytest.approx(0.1)  # step 20: the floor
    with pytest.raises(
        ValueError, match=r"unknown optimizer 'sgd'; expected one of \['adam_atan2'"
    ):
        optim.make_optimizer(_optim_section("sgd"), total_steps=10)


# ----------------------------------------------------------------------------- SparseSignSGD


def _np_sign_sgd(table, ids, grads, lr, wd):
    table = np.array(table, np.float32)
    out = table.copy()
    for i in np.unique(ids):
        g = grads[ids == i].sum(0)
        out[i] = table[i] * np.float32(1 - lr * wd) - np.float32(lr) * np.sign(g)
    return out


# Global batch of 6 over 2 replicas (3 each). id 2 appears on both replicas: replica 0 sees +1.0
# (local sign +), replica 1 sees -3.0, so the global sum is -2.0 (sign -). id 4 appears twice on
# replica 0 and its gradients cancel in column 1 (sign 0 -> decay only). Rows 0, 3, 5 are untouched.
_IDS = np.array([2, 4, 4, 1, 2, 1], np.int32)
_GRADS = np.array(
    [[1.0, 0.5], [0.25, 1.0], [0.5, -1.0], [-1.0, 2.0], [-3.0, 0.25], [0.5, -0.125]], np.float32
)


def test_sum_duplicate_rows():
    got = optim._sum_duplicate_rows(tf.constant(_IDS), tf.constant(_GRADS)).numpy()
    want = np.stack([_GRADS[_IDS == i].sum(0) for i in _IDS])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["tf", "keras"])
def test_sparse_sign_sgd_default_strategy(kind):
    rng = np.random.default_rng(2)
    t0 = rng.normal(size=(6, 2)).astype(np.float32)
    table = (
        tf.Variable(t0, trainable=False) if kind == "tf" else keras.Variable(t0, trainable=False)
    )
    opt = optim.SparseSignSGD(table, weight_decay=0.5)
    opt.apply(tf.constant(_IDS), tf.constant(_GRADS), 0.1)
    got = table.numpy()
    np.testing.assert_allclose(got, _np_sign_sgd(t0, _IDS, _GRADS, 0.1, 0.5), rtol=0, atol=1e-7)
    for untouched in (0, 3, 5):
        np.testing.assert_array_equal(got[untouched], t0[untouched])
    # id 4 column 1: grads cancel -> decay only; id 2: global sign of column 0 is negative.
    assert got[4, 1] == pytest.approx(t0[4, 1] * (1 - 0.05), abs=1e-7)
    assert got[2, 0] == pytest.approx(t0[2, 0] * 0.95 + 0.1, abs=1e-6)


def test_sparse_sign_sgd_mirrored_equals_single_device(mirrored):
    rng = np.random.default_rng(3)
    t0 = rng.normal(size=(6, 2)).astype(np.float32)
    ref = _np_sign_sgd(t0, _IDS, _GRADS, 0.1, 0.5)
    # Replica 0 alone would move row 2, column 0 the other way.
    local0 = _np_sign_sgd(t0, _IDS[:3], _GRADS[:3], 0.1, 0.5)
    assert np.sign(ref[2, 0] - t0[2, 0] * 0.95) != np.sign(local0[2, 0] - t0[2, 0] * 0.95)
    with mirrored.scope():
        table = tf.Variable(t0, trainable=False)
        opt = optim.SparseSignSGD(table, weight_decay=0.5)

    @tf.function
    def step(ids, grads, lr):
        mirrored.run(opt.apply, args=(ids, grads, lr))

    step(_split(mirrored, _IDS), _split(mirrored, _GRADS), tf.constant(0.1))
    copies = _replica_values(table)
    assert len(copies) == 2
    for c in copies:
        np.testing.assert_allclose(c, ref, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(copies[0], copies[1])
    np.testing.assert_array_equal(copies[0][[0, 3, 5]], t0[[0, 3, 5]])


# ----------------------------------------------------------------------------- module split


def test_split_modules_keep_checkpoint_paths_and_registered_names(tmp_path):
    """The schedule and the EMA live in their own modules; Keras still deserialises the schedule under
    its old registered name, and the EMA's checkpoint keys (which old checkpoints hold) are unchanged."""
    assert keras.saving.get_registered_name(WarmupCosine) == "trm_tf>WarmupCosine"
    cfg = keras.saving.serialize_keras_object(WarmupCosine(1e-3, 10, 100, 0.5))
    again = keras.saving.deserialize_keras_object(cfg)
    assert float(again(tf.constant(49))) == float(lr_at_step(50, 1e-3, 10, 100, 0.5))
    ema = EMA([keras.Variable(np.ones(2, np.float32)), keras.Variable(np.zeros(3, np.float32))])
    path = tf.train.Checkpoint(ema=ema).save(str(tmp_path / "ema"))
    names = sorted(n for n, _ in tf.train.list_variables(path) if n.startswith("ema/"))
    assert names == [
        "ema/shadows/0/.ATTRIBUTES/VARIABLE_VALUE",
        "ema/shadows/1/.ATTRIBUTES/VARIABLE_VALUE",
    ]


def _trainer_shaped_run(strategy, x, ids, y, w0, t0, steps=2):
    """The trainer's pattern: jit forward/backward, updates in strategy.run outside the jit."""
    gb = x.shape[0]
    with strategy.scope():
        w = keras.Variable(w0, name="w")
        table = tf.Variable(t0, trainable=False, name="puzzle_table")
        opt = optim.make_optimizer(
            _optim_section("adam_atan2", lr=0.05, lr_warmup_steps=1, weight_decay=0.1), 10
        )
        opt.build([w])
        sparse = optim.SparseSignSGD(table, weight_decay=0.1)
        ema = EMA([w], rate=0.9)

    @tf.function(jit_compile=True)
    def fwd_bwd(w_val, rows, xb, yb):
        with tf.GradientTape() as tape:
            tape.watch([w_val, rows])
            pred = tf.matmul(xb + rows, w_val)
            loss = tf.reduce_sum(tf.square(pred - yb)) / gb
        return tape.gradient(loss, [w_val, rows])

    @tf.function
    def step(xb, idb, yb, it):
        def fn(xr, ir, yr):
            rows = tf.gather(table, ir)
            g_w, g_rows = fwd_bwd(tf.convert_to_tensor(w), rows, xr, yr)
            opt.apply([g_w], [w])
            sparse.apply(ir, g_rows, lr_at_step(it, 0.01, 1, 10))
            ema.update()

        strategy.run(fn, args=(xb, idb, yb))

    for it in range(1, steps + 1):
        if strategy.num_replicas_in_sync > 1:
            args = (_split(strategy, x), _split(strategy, ids), _split(strategy, y))
        else:
            args = (tf.constant(x), tf.constant(ids), tf.constant(y))
        step(*args, tf.constant(it))
    return w, table, ema.shadows[0]


def test_trainer_shaped_step_mirrored_equals_default(mirrored):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    w0 = rng.normal(size=(2, 3)).astype(np.float32)
    t0 = rng.normal(size=(6, 2)).astype(np.float32)
    single = [
        v.numpy() for v in _trainer_shaped_run(tf.distribute.get_strategy(), x, _IDS, y, w0, t0)
    ]
    multi = _trainer_shaped_run(mirrored, x, _IDS, y, w0, t0)
    for got, want in zip(multi, single):
        copies = _replica_values(got)
        assert len(copies) == 2
        for c in copies:
            np.testing.assert_allclose(c, want, rtol=0, atol=1e-6)
    assert np.abs(single[1] - t0).max() > 1e-3 and np.abs(single[0] - w0).max() > 1e-3


def _count_reduce_ops(concrete):
    gd = concrete.graph.as_graph_def()
    nodes = list(gd.node) + [n for f in gd.library.function for n in f.node_def]
    return sum(n.op == "CollectiveReduceV2" for n in nodes)


def _reduced_train(strategy, x, y, w0, loss_scale, steps=3, poison=None):
    """The trainer's step shape: explicit SUM all-reduce, then apply as given (no second reduce)."""
    gb = x.shape[0]
    with strategy.scope():
        w = keras.Variable(w0, name="w")
        opt = optim.AdamATan2(WarmupCosine(0.05, 2, 10, 0.5), weight_decay=0.2)
        if loss_scale:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        opt.build([w])
        optim.apply_gradients_as_given(opt)

    @tf.function
    def step(xb, yb, bad):
        def fn(xr, yr, bad_r):
            scale = tf.cast(opt.dynamic_scale, tf.float32) if loss_scale else 1.0
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.matmul(xr, w) - yr)) / gb * scale
            g = tape.gradient(loss, [w])
            g = [g[0] + bad_r]  # bad_r: 0, or NaN on one replica to test the skip decision
            reduced = tf.distribute.get_replica_context().all_reduce("sum", g)
            opt.apply_gradients(zip(reduced, [w]))

        strategy.run(fn, args=(xb, yb, bad))

    n = strategy.num_replicas_in_sync
    for i in range(steps):
        bad = np.zeros(n, np.float32)
        if poison is not None and i == poison:
            bad[-1] = np.nan  # the LAST replica only
        if n > 1:
            args = (_split(strategy, x), _split(strategy, y), _split(strategy, bad))
        else:
            args = (tf.constant(x), tf.constant(y), tf.constant(bad[0]))
        step(*args)
    reduces = _count_reduce_ops(step.get_concrete_function(*args)) if n > 1 else None
    return w, opt, reduces


@pytest.mark.parametrize("loss_scale", [False, True])
def test_apply_gradients_as_given_one_reduce_and_equals_single_device(mirrored, loss_scale):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    w0 = rng.normal(size=(5, 2)).astype(np.float32)
    # Single device through Keras' own (unmodified) path: the reference trajectory.
    single = _adam_train(tf.distribute.get_strategy(), x, y, w0).numpy()
    w_m, _, reduces = _reduced_train(mirrored, x, y, w0, loss_scale)
    for c in _replica_values(w_m):
        np.testing.assert_allclose(c, single, rtol=0, atol=1e-6)

    # Only the caller's all-reduce is in the step: as many collective ops as one reduction lowers to.
    @tf.function
    def one_reduce():
        return mirrored.run(
            lambda: tf.distribute.get_replica_context().all_reduce("sum", [tf.zeros(w0.shape)])
        )

    assert reduces == _count_reduce_ops(one_reduce.get_concrete_function()) >= 1


def test_loss_scale_skip_decision_uses_reduced_gradients(mirrored):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    w0 = rng.normal(size=(3, 1)).astype(np.float32)
    # A non-finite gradient on the second replica only at the first step: every replica must skip it
    # (the summed gradient is NaN everywhere) and halve the scale, and the two copies stay equal.
    w, opt, _ = _reduced_train(mirrored, x, y, w0, loss_scale=True, steps=1, poison=0)
    copies = _replica_values(w)
    for c in copies:
        np.testing.assert_array_equal(c, w0)
    assert float(opt.dynamic_scale.numpy()) == pytest.approx(2.0**15 / 2)
    assert int(opt.iterations.numpy()) == 0
