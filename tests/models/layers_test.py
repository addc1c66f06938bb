"""Tests of trm_tf.models.layers against the formulas of docs/model.md#architecture."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from trm_tf.models import layers as L


def test_trunc_normal_statistics_and_clip():
    init = L.TruncatedNormalLeCun(0.1, seed=3)
    x = init((400, 500)).numpy()
    comp_std = 0.1 / 0.8796256610342398
    assert abs(L._trunc_normal_comp_std(0.1) - comp_std) < 1e-9
    assert abs(x.std() - 0.1) < 0.001  # spec: empirical std 0.09995 at std 0.1
    assert np.abs(x).max() <= 2 * comp_std + 1e-7  # clipped at +-2 comp_std = 0.22737
    assert np.abs(x).max() > 0.99 * 2 * comp_std  # and the tails do reach the clip
    assert abs(x.mean()) < 1e-3
    # Stateless and seeded: same seed -> same tensor; other seed -> other tensor.
    np.testing.assert_array_equal(x, L.TruncatedNormalLeCun(0.1, seed=3)((400, 500)).numpy())
    assert not np.allclose(x, L.TruncatedNormalLeCun(0.1, seed=4)((400, 500)).numpy())


def test_trunc_normal_lecun_default_std_and_zero():
    x = L.TruncatedNormalLeCun(None, seed=0)((256, 2000)).numpy()  # fan_in = shape[0] = 256
    assert abs(x.std() - 1 / 16) < 0.001
    np.testing.assert_array_equal(L.TruncatedNormalLeCun(0.0)((3, 4)).numpy(), np.zeros((3, 4)))
    cfg = L.TruncatedNormalLeCun(0.5, seed=7).get_config()
    assert cfg == {"std": 0.5, "seed": 7}


def test_rmsnorm_axis_and_dtype():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 7)).astype(np.float32) * 3
    for axis in (-1, 1):
        y = L.RMSNorm(axis=axis)(x).numpy()
        want = x / np.sqrt(np.mean(x**2, axis=axis, keepdims=True) + 1e-5)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    # Mean square over the normalised axis is ~1 (no gain), not over the other axis.
    y1 = L.RMSNorm(axis=1)(x).numpy()
    np.testing.assert_allclose(np.mean(y1**2, axis=1), 1.0, rtol=1e-4)
    assert not np.allclose(np.mean(y1**2, axis=2), 1.0, rtol=1e-2)
    # bf16 in -> bf16 out, with the statistic computed in float32.
    xb = tf.cast(x, tf.bfloat16)
    yb = L.rms_norm(xb)
    assert yb.dtype == tf.bfloat16
    xb32 = tf.cast(xb, tf.float32).numpy()
    want = xb32 / np.sqrt(np.mean(xb32**2, axis=-1, keepdims=True) + 1e-5)
    np.testing.assert_array_equal(
        tf.cast(yb, tf.float32).numpy(), tf.cast(tf.cast(want, tf.bfloat16), tf.float32).numpy()
    )


def test_swiglu_sizes():
    assert L.swiglu_intermediate_size(512, 4.0) == 1536
    assert L.swiglu_intermediate_size(97, 4.0) == 512
    assert L.swiglu_intermediate_size(916, 4.0) == 2560
    layer = L.SwiGLU(512, 4.0)
    layer.build(None)
    assert tuple(layer.gate_up_proj.kernel.shape) == (512, 3072)
    assert tuple(layer.down_proj.kernel.shape) == (1536, 512)


def test_swiglu_gate_first_up_second():
    rng = np.random.default_rng(1)
    layer = L.SwiGLU(8, 4.0, seed=5)
    layer.build(None)
    i = layer.intermediate_size
    assert i == 256
    x = rng.normal(size=(3, 4, 8)).astype(np.float32)
    wgu = layer.gate_up_proj.kernel.numpy()
    wd = layer.down_proj.kernel.numpy()
    g, u = x @ wgu[:, :i], x @ wgu[:, i:]
    want = ((g / (1 + np.exp(-g))) * u) @ wd
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-4, atol=1e-6)


def test_rope_rotate_half_and_positions():
    hd, t = 8, 6
    cos, sin = L.rope_cos_sin(hd, t, 10000.0)
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    ang = np.arange(t)[:, None] * inv[None]
    np.testing.assert_allclose(cos, np.cos(np.concatenate([ang, ang], -1)), atol=1e-6)
    np.testing.assert_allclose(sin, np.sin(np.concatenate([ang, ang], -1)), atol=1e-6)
    rng = np.random.default_rng(2)
    q = rng.normal(size=(1, t, 2, hd)).astype(np.float32)
    k = rng.normal(size=(1, t, 2, hd)).astype(np.float32)
    rq, rk = L.RotaryEmbedding(hd, t)(q, k)
    half = lambda a: np.concatenate([-a[..., hd // 2 :], a[..., : hd // 2]], -1)  # noqa: E731
    want_q = q * cos[:, None] + half(q) * sin[:, None]
    np.testing.assert_allclose(rq.numpy(), want_q, atol=1e-5)
    # Position 0 is the identity; norms are preserved (pure rotation of half-pairs).
    np.testing.assert_allclose(rq.numpy()[:, 0], q[:, 0], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(rk.numpy(), axis=-1), np.linalg.norm(k, axis=-1), rtol=1e-5
    )
    # bf16 inputs come back as bf16.
    bq, _ = L.RotaryEmbedding(hd, t)(tf.cast(q, tf.bfloat16), tf.cast(k, tf.bfloat16))
    assert bq.dtype == tf.bfloat16


def test_attention_qkv_head_order():
    rng = np.random.default_rng(3)
    d, h, t = 8, 2, 5
    attn = L.Attention(d, h, seed=1)
    attn.build(None)
    x = rng.normal(size=(2, t, d)).astype(np.float32)
    w = attn.qkv_proj.kernel.numpy()  # [in, 3D]: columns = Q heads, then K heads, then V heads
    q, k, v = (x @ w[:, i * d : (i + 1) * d] for i in range(3))
    hd = d // h
    q, k, v = (a.reshape(2, t, h, hd) for a in (q, k, v))
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", p, v).reshape(2, t, d) @ attn.o_proj.kernel.numpy()
    np.testing.assert_allclose(attn(x).numpy(), o, rtol=1e-4, atol=1e-5)
    # Non-causal: the first position depends on the last one.
    x2 = x.copy()
    x2[:, -1] += 1.0
    assert not np.allclose(attn(x2).numpy()[:, 0], attn(x).numpy()[:, 0])


def test_attention_with_rope_matches_numpy_and_stacked_rotation():
    """Heads-first attention with RoPE (Q scale folded into the tables) against the plain formula.

    head_dim 6: the scale 1/sqrt(6) is not a power of two, so folding it into Q is not exact and the
    tolerance has to absorb float32 rounding only.
    """
    rng = np.random.default_rng(5)
    d, h, t = 12, 2, 7
    hd = d // h
    attn = L.Attention(d, h, seed=3)
    attn.build(None)
    rope = L.RotaryEmbedding(hd, t)
    x = rng.normal(size=(3, t, d)).astype(np.float32)
    w = attn.qkv_proj.kernel.numpy()
    q, k, v = (
        (x @ w[:, i * d : (i + 1) * d]).reshape(3, t, h, hd).astype(np.float64) for i in range(3)
    )
    cos, sin = (a[:, None].astype(np.float64) for a in L.rope_cos_sin(hd, t))
    half = lambda a: np.concatenate([-a[..., hd // 2 :], a[..., : hd // 2]], -1)  # noqa: E731
    q, k = q * cos + half(q) * sin, k * cos + half(k) * sin
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", p, v).reshape(3, t, d) @ attn.o_proj.kernel.numpy()
    np.testing.assert_allclose(attn(x, rotary=rope).numpy(), o, rtol=1e-4, atol=2e-5)
    # The stacked heads-first rotation equals the per-tensor one, with Q scaled.
    qk = rng.normal(size=(2, 3, h, t, hd)).astype(np.float32)
    got = rope.rotate_heads_first(qk, q_scale=0.5).numpy()
    rq, rk = rope(np.transpose(qk[0], (0, 2, 1, 3)), np.transpose(qk[1], (0, 2, 1, 3)))
    np.testing.assert_allclose(got[0], 0.5 * np.transpose(rq.numpy(), (0, 2, 1, 3)), atol=1e-6)
    np.testing.assert_allclose(got[1], np.transpose(rk.numpy(), (0, 2, 1, 3)), atol=1e-6)
    # The signed permutation is rotate-half, exactly.
    a = rng.normal(size=(4, hd)).astype(np.float32)
    np.testing.assert_array_equal(a @ L.rotate_half_matrix(hd), half(a))
    with pytest.raises(ValueError, match="even head_dim"):
        L.rotate_half_matrix(5)


def test_mlp_t_mixer_normalises_over_sequence_axis():
    rng = np.random.default_rng(4)
    t, d = 6, 4
    mixer = L.MLPTokenMixer(t, 4.0, seed=2)
    mixer.build(None)
    h = rng.normal(size=(2, t, d)).astype(np.float32)
    sw = mixer.swiglu
    i = sw.intermediate_size
    ht = np.transpose(h, (0, 2, 1))
    wgu = sw.gate_up_proj.kernel.numpy()
    g, u = ht @ wgu[:, :i], ht @ wgu[:, i:]
    r = ht + ((g / (1 + np.exp(-g))) * u) @ sw.down_proj.kernel.numpy()
    want = np.transpose(r / np.sqrt(np.mean(r**2, axis=-1, keepdims=True) + 1e-5), (0, 2, 1))
    y = mixer(h).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.mean(y**2, axis=1), 1.0, rtol=1e-3)  # per channel, over T


def test_block_no_bias_and_config_roundtrip():
    block = L.TRMBlock(16, 2, 4.0, seq_len=5, mlp_t=False)
    block.build(None)
    assert all("bias" not in v.path for v in block.weights)
    cfg = block.get_config()
    clone = L.TRMBlock.from_config(cfg)
    assert clone.get_config() == cfg


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_swiglu_mixed_policy_keeps_fp32_variables(policy):
    layer = L.SwiGLU(8, 4.0, dtype=keras.DTypePolicy(policy))
    layer.build(None)
    assert layer.gate_up_proj.kernel.dtype == "float32"
    y = layer(np.ones((1, 2, 8), np.float32))
    assert y.dtype == tf.as_dtype(policy.split("_")[1])


def test_local_window_mask_geometry_and_errors():
    m = L.local_window_mask(2 + 16, 2, 3)  # 2 prefix positions + a 4 x 4 grid, 3 x 3 windows
    assert m.shape == (18, 18) and m[:2].all() and m[:, :2].all()  # the prefix is global
    grid = m[2:, 2:]
    assert grid[0].reshape(4, 4)[:2, :2].all() and grid[0].sum() == 4  # a corner sees 2 x 2
    assert grid[5].sum() == 9 and grid[5].reshape(4, 4)[:3, :3].all()  # cell (1, 1) sees 3 x 3
    np.testing.assert_array_equal(grid, grid.T)
    assert L.local_window_mask(16, 0, 7).all()  # a window as wide as the grid is full attention
    with pytest.raises(ValueError, match="positive odd"):
        L.local_window_mask(16, 0, 4)
    with pytest.raises(ValueError, match="square grid"):
        L.local_window_mask(17, 0, 3)


def test_windowed_attention_matches_masked_numpy_and_is_local():
    rng = np.random.default_rng(6)
    d, h, p, g = 8, 2, 1, 5
    t = p + g * g
    attn = L.Attention(d, h, seed=4, window=3, prefix_len=p)
    attn.build(None)
    x = rng.normal(size=(2, t, d)).astype(np.float32)
    w = attn.qkv_proj.kernel.numpy()
    q, k, v = ((x @ w[:, i * d : (i + 1) * d]).reshape(2, t, h, d // h) for i in range(3))
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // h)
    s = np.where(L.local_window_mask(t, p, 3), s, -np.inf)
    pr = np.exp(s - s.max(-1, keepdims=True))
    pr /= pr.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", pr, v).reshape(2, t, d) @ attn.o_proj.kernel.numpy()
    y = attn(x).numpy()
    np.testing.assert_allclose(y, o, rtol=1e-4, atol=1e-5)
    # Cell (0, 0) (position p) ignores the far corner but sees its neighbour and the prefix.
    for pos, changes in ((t - 1, False), (p + 1, True), (0, True)):
        x2 = x.copy()
        x2[:, pos] += 1.0
        assert np.allclose(attn(x2).numpy()[:, p], y[:, p]) != changes, pos
    with pytest.raises(ValueError, match="mlp_t=False"):
        from trm_tf.models import ReasoningBackbone

        ReasoningBackbone.create("trm", 11, 16, 1, mlp_t=True, attention_window=3)


def test_trunc_normal_computed_on_host_cpu_whatever_the_device_scope():
    init = L.TruncatedNormalLeCun(0.3, seed=11)
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
