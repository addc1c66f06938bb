"""Tests of trm_tf.models.layers (attention, MLP-T token mixer, block) against the formulas of
docs/model.md#architecture; the bfloat16 attention's rounding is attention_bf16_test.py."""

import math

import numpy as np
import pytest

from trm_tf.models import layers as L
from trm_tf.models.primitives import (
    RotaryEmbedding,
    local_window_mask,
    rope_cos_sin,
    rotate_half_matrix,
)


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
    rope = RotaryEmbedding(hd, t)
    x = rng.normal(size=(3, t, d)).astype(np.float32)
    w = attn.qkv_proj.kernel.numpy()
    q, k, v = (
        (x @ w[:, i * d : (i + 1) * d]).reshape(3, t, h, hd).astype(np.float64) for i in range(3)
    )
    cos, sin = (a[:, None].astype(np.float64) for a in rope_cos_sin(hd, t))
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
    np.testing.assert_array_equal(a @ rotate_half_matrix(hd), half(a))
    with pytest.raises(ValueError, match="even head_dim"):
        rotate_half_matrix(5)


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
    s = np.where(local_window_mask(t, p, 3), s, -np.inf)
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
