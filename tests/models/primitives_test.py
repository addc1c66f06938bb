"""Tests of trm_tf.models.primitives (initializers, RMSNorm, SwiGLU, RoPE, the window mask) against the
formulas of docs/model.md#architecture."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trm_tf.models import primitives as P


def test_trunc_normal_statistics_and_clip():
    init = P.TruncatedNormalLeCun(0.1, seed=3)
    x = init((400, 500)).numpy()
    comp_std = 0.1 / 0.8796256610342398
    assert abs(P._trunc_normal_comp_std(0.1) - comp_std) < 1e-9
    assert abs(x.std() - 0.1) < 0.001  # spec: empirical std 0.09995 at std 0.1
    assert np.abs(x).max() <= 2 * comp_std + 1e-7  # clipped at +-2 comp_std = 0.22737
    assert np.abs(x).max() > 0.99 * 2 * comp_std  # and the tails do reach the clip
    assert abs(x.mean()) < 1e-3
    # Stateless and seeded: same seed -> same tensor; other seed -> other tensor.
    np.testing.assert_array_equal(x, P.TruncatedNormalLeCun(0.1, seed=3)((400, 500)).numpy())
    assert not np.allclose(x, P.TruncatedNormalLeCun(0.1, seed=4)((400, 500)).numpy())


def test_trunc_normal_lecun_default_std_and_zero():
    x = P.TruncatedNormalLeCun(None, seed=0)((256, 2000)).numpy()  # fan_in = shape[0] = 256
    assert abs(x.std() - 1 / 16) < 0.001
    np.testing.assert_array_equal(P.TruncatedNormalLeCun(0.0)((3, 4)).numpy(), np.zeros((3, 4)))
    cfg = P.TruncatedNormalLeCun(0.5, seed=7).get_config()
    assert cfg == {"std": 0.5, "seed": 7}


def test_trunc_normal_computed_on_host_cpu_whatever_the_device_scope():
    init = P.TruncatedNormalLeCun(0.3, seed=11)
    ref = init((17, 9)).numpy()
    assert ref.dtype == np.float32 and np.abs(ref).max() > 0
    # Eager under another device: same bits, and the tensor was produced on CPU:0 (only a copy of
    # the final value would move to the scope's device).
    with tf.device("/device:CPU:1"):
        y = init((17, 9))
    assert y.device.endswith("device:CPU:0"), y.device
    np.testing.assert_array_equal(y.numpy(), ref)

    # Traced inside a strategy scope under an accelerator-like device scope: the RNG, erfinv and cast
    # ops are placed on CPU:0, and the values are the same bits.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    @tf.function
    def traced():
        with tf.device("/device:CPU:1"):
            return init((17, 9), dtype="float32")

    with strategy.scope():
        out = traced()
        graph = traced.get_concrete_function().graph
    np.testing.assert_array_equal(out.numpy(), ref)
    placed = {
        op.type: op.device
        for op in graph.get_operations()
        if "Random" in op.type or op.type in ("Erfinv", "Cast", "ClipByValue")
    }
    assert {"StatelessRandomUniformV2", "Erfinv", "Cast"} <= placed.keys(), placed
    for op_type, device in placed.items():
        assert device.endswith("device:CPU:0"), (op_type, device)

    # A mirrored variable made with it holds the same bits on every replica.
    with strategy.scope():
        v = keras.Variable(initializer=init, shape=(17, 9), dtype="float32")
    for component in v.value.values:
        np.testing.assert_array_equal(component.numpy(), ref)


def test_rmsnorm_axis_and_dtype():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 7)).astype(np.float32) * 3
    for axis in (-1, 1):
        y = P.RMSNorm(axis=axis)(x).numpy()
        want = x / np.sqrt(np.mean(x**2, axis=axis, keepdims=True) + 1e-5)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    # Mean square over the normalised axis is ~1 (no gain), not over the other axis.
    y1 = P.RMSNorm(axis=1)(x).numpy()
    np.testing.assert_allclose(np.mean(y1**2, axis=1), 1.0, rtol=1e-4)
    assert not np.allclose(np.mean(y1**2, axis=2), 1.0, rtol=1e-2)
    # bf16 in -> bf16 out, with the statistic computed in float32.
    xb = tf.cast(x, tf.bfloat16)
    yb = P.rms_norm(xb)
    assert yb.dtype == tf.bfloat16
    xb32 = tf.cast(xb, tf.float32).numpy()
    want = xb32 / np.sqrt(np.mean(xb32**2, axis=-1, keepdims=True) + 1e-5)
    np.testing.assert_array_equal(
        tf.cast(yb, tf.float32).numpy(), tf.cast(tf.cast(want, tf.bfloat16), tf.float32).numpy()
    )


def test_swiglu_sizes():
    assert P.swiglu_intermediate_size(512, 4.0) == 1536
    assert P.swiglu_intermediate_size(97, 4.0) == 512
    assert P.swiglu_intermediate_size(916, 4.0) == 2560
    layer = P.SwiGLU(512, 4.0)
    layer.build(None)
    assert tuple(layer.gate_up_proj.kernel.shape) == (512, 3072)
    assert tuple(layer.down_proj.kernel.shape) == (1536, 512)


def test_swiglu_gate_first_up_second():
    rng = np.random.default_rng(1)
    layer = P.SwiGLU(8, 4.0, seed=5)
    layer.build(None)
    i = layer.intermediate_size
    assert i == 256
    x = rng.normal(size=(3, 4, 8)).astype(np.float32)
    wgu = layer.gate_up_proj.kernel.numpy()
    wd = layer.down_proj.kernel.numpy()
    g, u = x @ wgu[:, :i], x @ wgu[:, i:]
    want = ((g / (1 + np.exp(-g))) * u) @ wd
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_swiglu_mixed_policy_keeps_fp32_variables(policy):
    layer = P.SwiGLU(8, 4.0, dtype=keras.DTypePolicy(policy))
    layer.build(None)
    assert layer.gate_up_proj.kernel.dtype == "float32"
    y = layer(np.ones((1, 2, 8), np.float32))
    assert y.dtype == tf.as_dtype(policy.split("_")[1])


def test_rope_rotate_half_and_positions():
    hd, t = 8, 6
    cos, sin = P.rope_cos_sin(hd, t, 10000.0)
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    ang = np.arange(t)[:, None] * inv[None]
    np.testing.assert_allclose(cos, np.cos(np.concatenate([ang, ang], -1)), atol=1e-6)
    np.testing.assert_allclose(sin, np.sin(np.concatenate([ang, ang], -1)), atol=1e-6)
    rng = np.random.default_rng(2)
    q = rng.normal(size=(1, t, 2, hd)).astype(np.float32)
    k = rng.normal(size=(1, t, 2, hd)).astype(np.float32)
    rq, rk = P.RotaryEmbedding(hd, t)(q, k)
    half = lambda a: np.concatenate([-a[..., hd // 2 :], a[..., : hd // 2]], -1)  # noqa: E731
    want_q = q * cos[:, None] + half(q) * sin[:, None]
    np.testing.assert_allclose(rq.numpy(), want_q, atol=1e-5)
    # Position 0 is the identity; norms are preserved (pure rotation of half-pairs).
    np.testing.assert_allclose(rq.numpy()[:, 0], q[:, 0], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(rk.numpy(), axis=-1), np.linalg.norm(k, axis=-1), rtol=1e-5
    )
    # bf16 inputs come back as bf16.
    bq, _ = P.RotaryEmbedding(hd, t)(tf.cast(q, tf.bfloat16), tf.cast(k, tf.bfloat16))
    assert bq.dtype == tf.bfloat16


def test_local_window_mask_geometry_and_errors():
    m = P.local_window_mask(2 + 16, 2, 3)  # 2 prefix positions + a 4 x 4 grid, 3 x 3 windows
    assert m.shape == (18, 18) and m[:2].all() and m[:, :2].all()  # the prefix is global
    grid = m[2:, 2:]
    assert grid[0].reshape(4, 4)[:2, :2].all() and grid[0].sum() == 4  # a corner sees 2 x 2
    assert grid[5].sum() == 9 and grid[5].reshape(4, 4)[:3, :3].all()  # cell (1, 1) sees 3 x 3
    np.testing.assert_array_equal(grid, grid.T)
    assert P.local_window_mask(16, 0, 7).all()  # a window as wide as the grid is full attention
    with pytest.raises(ValueError, match="positive odd"):
        P.local_window_mask(16, 0, 4)
    with pytest.raises(ValueError, match="square grid"):
        P.local_window_mask(17, 0, 3)
