"""bfloat16 attention rounds where the reference's fused attention kernel rounds.

The reference (torch's scaled_dot_product_attention: the CPU flash kernel, FlashAttention on GPU) forms
the scores in float32, rounds the *unnormalised* exp(s - max) to bfloat16 for the product with V,
accumulates that product in float32 and divides by the float32 row sum before rounding the output once.
Rounding the normalised probabilities instead (the old port) left about half of the outputs one
bfloat16 step away from the reference's, which the recursion then amplifies.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from trm_tf.models import layers as L


def _bf16(a) -> np.ndarray:
    """Rounds to bfloat16 (nearest, ties to even) and returns float64."""
    return tf.cast(tf.cast(np.asarray(a, np.float32), tf.bfloat16), tf.float64).numpy()


def _fused_kernel_reference(x, w_qkv, w_o, heads: int) -> np.ndarray:
    """The fused kernel's rounding points, in float64 between them (no RoPE)."""
    b, t, d = x.shape
    hd = d // heads
    qkv = _bf16(_bf16(x).reshape(b * t, d) @ _bf16(w_qkv)).reshape(b, t, 3, heads, hd)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, T, hd]
    s = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hd)
    e = np.exp(s - s.max(-1, keepdims=True))
    o = _bf16((_bf16(e) @ v) / e.sum(-1, keepdims=True))  # one rounding after the division
    o = o.transpose(0, 2, 1, 3).reshape(b * t, d)
    return _bf16(o @ _bf16(w_o)).reshape(b, t, d)


def test_bf16_attention_matches_fused_kernel_rounding():
    rng = np.random.default_rng(0)
    d, heads, t = 32, 2, 83
    attn = L.Attention(d, heads, seed=5, dtype=keras.DTypePolicy("mixed_bfloat16"))
    attn.build(None)
    x = (2.0 * rng.normal(size=(4, t, d))).astype(np.float32)
    y = attn(tf.cast(x, tf.bfloat16))
    assert y.dtype == tf.bfloat16
    want = _fused_kernel_reference(
        x, attn.qkv_proj.kernel.numpy(), attn.o_proj.kernel.numpy(), heads
    )
    got = tf.cast(y, tf.float64).numpy()
    # Only float32-vs-float64 accumulation can flip a rounding here; rounding the normalised
    # probabilities instead leaves about half of the elements one bfloat16 step off.
    assert np.mean(got == want) > 0.98, np.mean(got == want)
    np.testing.assert_allclose(got, want, rtol=2**-7, atol=1e-6)


def test_fused_softmax_values_equals_softmax_product_up_to_rounding():
    """Same value as softmax(s) @ v (float64), within one bfloat16 rounding, rows of any scale."""
    rng = np.random.default_rng(1)
    s = (rng.normal(size=(3, 7, 7)) * np.array([0.1, 3.0, 30.0])[:, None, None]).astype(np.float32)
    v = _bf16(rng.normal(size=(3, 7, 4)))
    out = L.fused_softmax_values(tf.constant(s), tf.cast(v, tf.bfloat16))
    assert out.dtype == tf.bfloat16
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ v
    got = tf.cast(out, tf.float64).numpy()
    # exp(s - max) is rounded once (2^-9 relative) and the output once more.
    np.testing.assert_allclose(got, want, rtol=2**-7, atol=2**-8)
