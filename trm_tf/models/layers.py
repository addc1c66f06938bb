"""Keras 3 building blocks of the Tiny Recursive Model (TRM): attention, MLP-T token mixer, block and
the reasoning module, written from docs/model.md#architecture on the primitives of `primitives.py`.

Every layer follows the reference numerics (docs/model.md#architecture, #porting-pitfalls 5-8):

* weights are created in float32 and, under a mixed dtype policy, read in the compute dtype at each use
  (the reference casts its fp32 master weights to bf16 at every matmul);
* RMSNorm (no gain) and RoPE always compute in float32 and cast back to the input dtype;
* the attention scores Q K^T and their softmax are computed in float32, from Q and K in the compute
  dtype (a fused attention kernel's float32 accumulation); the unnormalised exp(s - max) is rounded
  to the compute dtype for the product with V and the row sum divides in float32;
* scale constants (sqrt(D), 1/sqrt(2) in the embeddings) multiply in float32 and the product is
  rounded once, as torch does for a low-precision tensor times a Python float;
* there are no biases anywhere except the Q head (`ReasoningBackbone.q_head` in `backbone.py`).

The layers take `**kwargs` (name, dtype policy, ...) and implement `get_config`, following keras-hub
conventions, so they serialise like any Keras layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from trm_tf.models.primitives import (
    RMSNorm,
    SwiGLU,
    config_with,
    lecun_dense,
    local_window_mask,
)


def fused_softmax_values(scores, v):
    """softmax(scores) @ v in v's low-precision dtype, rounded where a fused attention kernel rounds.

    The reference's attention (torch's CPU flash kernel, FlashAttention on GPU) rounds the
    *unnormalised* exp(s - max) to the compute dtype for the product with V, accumulates that product
    in float32 and divides by the float32 row sum at the end, rounding the output once. Rounding the
    normalised probabilities instead leaves a third to a half of a bfloat16 attention layer's
    outputs one bfloat16 step away from the reference's. scores: float32 [..., T, T]; v: [..., T, head_dim] in the compute dtype.
    """
    e = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    pv = tf.matmul(tf.cast(tf.cast(e, v.dtype), tf.float32), tf.cast(v, tf.float32))
    return tf.cast(pv / tf.reduce_sum(e, axis=-1, keepdims=True), v.dtype)


@keras.saving.register_keras_serializable(package="trm_tf")
class Attention(keras.layers.Layer):
    """Non-causal multi-head self-attention with a fused qkv projection and no biases
    (docs/model.md#block).

    qkv = x @ Wqkv is viewed as [B, T, 3H, head_dim]: heads 0..H-1 are Q, H..2H-1 K, 2H..3H-1 V
    (the reference's row order). RoPE (optional) rotates Q and K. Scores use scale 1/sqrt(head_dim),
    no mask, softmax in float32. The scale multiplies Q before the score product. In float32 it is
    folded into the RoPE tables when RoPE is on, which is exact whenever the scale is a power of two
    (head_dim 16, 64, 256) and otherwise differs from scaling the scores by float32 rounding only. In
    a low-precision compute dtype, Q and K are rounded to it (after RoPE), cast to float32, and the
    scale and the score product run in float32, so the scores are never rounded to 8 significant
    bits; the product with V then rounds where a fused attention kernel does (`fused_softmax_values`).

    head_dim = D // num_heads and the inner width is num_heads * head_dim, which is D unless the heads
    do not divide D (the reference's transformer baseline: D=512, 12 heads -> head_dim 42, qkv
    [512 -> 1512], o_proj [504 -> 512]).

    Args:
        hidden_size: model width D.
        num_heads: number of heads (no GQA: K and V have as many heads as Q).
        seed: base seed; qkv and o kernels use seed and seed + 1.
        window: 0 = full attention (the reference). An odd w > 0 restricts every grid cell to a w x w
            neighbourhood plus the `prefix_len` global prefix positions (`local_window_mask`; contrib05,
            not in the reference). The scores stay dense and are masked before the softmax.
        prefix_len: puzzle-prefix positions at the start of the sequence (global under a window).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        seed: int = 0,
        window: int = 0,
        prefix_len: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.seed = int(seed)
        self.window = int(window)
        self.prefix_len = int(prefix_len)
        self.head_dim = self.hidden_size // self.num_heads
        if self.head_dim < 1:
            raise ValueError(f"num_heads {num_heads} > hidden_size {hidden_size}")
        self.inner_size = self.num_heads * self.head_dim
        self.qkv_proj = lecun_dense(3 * self.inner_size, self.seed, self.dtype_policy, "qkv_proj")
        self.o_proj = lecun_dense(self.hidden_size, self.seed + 1, self.dtype_policy, "o_proj")

    def build(self, input_shape=None):
        self.qkv_proj.build((None, self.hidden_size))
        self.o_proj.build((None, self.inner_size))
        self.built = True

    def call(self, x, rotary=None):
        b, t = tf.shape(x)[0], x.shape[1]
        scale = 1.0 / math.sqrt(self.head_dim)
        # Heads-first layout [3, B, H, T, head_dim]: the score and value products are then plain
        # batched matmuls over B*H (oneDNN runs these ~1.5x faster than the equivalent einsums).
        qkv = tf.reshape(self.qkv_proj(x), [b, t, 3, self.num_heads, self.head_dim])
        qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])
        if qkv.dtype == tf.float32:
            if rotary is not None:
                qk, v = tf.split(qkv, [2, 1], axis=0)
                q, k = tf.unstack(rotary.rotate_heads_first(qk, q_scale=scale), axis=0)
                v = v[0]
            else:
                q, k, v = tf.unstack(qkv, axis=0)
                q = q * scale
            scores = tf.matmul(q, k, transpose_b=True)
        else:
            # Low precision: Q and K are rounded to the compute dtype (after RoPE, as the reference
            # rounds its rotated Q and K), then the scores are formed in float32 from them. A fused
            # attention kernel accumulates Q K^T in float32 and never rounds the scores; rounding
            # them to bfloat16 (8 significant bits) before the softmax would move a score of 10 by
            # up to 0.03, i.e. change its probability by up to 3%. The scale is applied in float32
            # too (folding it into bfloat16 Q would round Q * scale once more). On TPU even a
            # default-precision float32 matmul (one bfloat16 MXU pass) loses nothing here: its
            # operands are bfloat16 values, and it accumulates in float32.
            qk, v = tf.split(qkv, [2, 1], axis=0)
            v = v[0]
            if rotary is not None:
                qk = rotary.rotate_heads_first(qk)
            q, k = tf.unstack(tf.cast(qk, tf.float32), axis=0)
            scores = tf.matmul(q * scale, k, transpose_b=True)
        if self.window:
            allowed = local_window_mask(t, self.prefix_len, self.window)
            scores += tf.constant(np.where(allowed, 0.0, -1e30).astype(np.float32))
        if v.dtype == tf.float32:
            out = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        else:
            out = fused_softmax_values(scores, v)
        out = tf.transpose(out, [0, 2, 1, 3])  # [B, T, H, head_dim]
        return self.o_proj(tf.reshape(out, [b, t, self.inner_size]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return config_with(
            super().get_config(), self, ("hidden_size", "num_heads", "seed", "window", "prefix_len")
        )


@keras.saving.register_keras_serializable(package="trm_tf")
class MLPTokenMixer(keras.layers.Layer):
    """MLP-T token mixer: SwiGLU over the sequence axis, residual, RMSNorm over the sequence axis.

    h [B, T, D] -> transpose to [B, D, T] -> SwiGLU on the last (sequence) axis, independently per
    channel -> transpose back -> rms_norm(h + out) normalised over axis 1 (T values per channel).
    Normalising over D instead is the classic porting bug (docs/model.md#block).

    Args:
        seq_len: total positions T (puzzle prefix + sequence).
        expansion: SwiGLU expansion.
        epsilon: RMSNorm epsilon.
        seed: base seed for the two kernels.
    """

    def __init__(
        self, seq_len: int, expansion: float, epsilon: float = 1e-5, seed: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        self.seq_len = int(seq_len)
        self.expansion = float(expansion)
        self.epsilon = float(epsilon)
        self.seed = int(seed)
        self.swiglu = SwiGLU(self.seq_len, self.expansion, seed=self.seed, dtype=self.dtype_policy)
        self.norm = RMSNorm(axis=1, epsilon=self.epsilon, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.swiglu.build((None, self.seq_len))
        self.built = True

    def call(self, h):
        out = self.swiglu(tf.transpose(h, [0, 2, 1]))
        return self.norm(h + tf.transpose(out, [0, 2, 1]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return config_with(super().get_config(), self, ("seq_len", "expansion", "epsilon", "seed"))


@keras.saving.register_keras_serializable(package="trm_tf")
class TRMBlock(keras.layers.Layer):
    """Post-norm TRM block (docs/model.md#block).

    Attention variant: h = norm(h + attn(h)); h = norm(h + swiglu(h)).
    MLP-T variant:     h = mlp_t_mixer(h) (see `MLPTokenMixer`); h = norm(h + swiglu(h)).

    Args:
        hidden_size: model width D.
        num_heads: attention heads (unused with mlp_t).
        expansion: SwiGLU expansion.
        seq_len: total positions T (needed by MLP-T).
        mlp_t: use the MLP-T token mixer instead of attention.
        epsilon: RMSNorm epsilon.
        seed: base seed for this block's kernels.
        attention_window: 0 = full attention; odd w > 0 = w x w grid windows (see `Attention`).
        prefix_len: puzzle-prefix positions (global tokens under a window).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        expansion: float,
        seq_len: int,
        mlp_t: bool = False,
        epsilon: float = 1e-5,
        seed: int = 0,
        attention_window: int = 0,
        prefix_len: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.expansion = float(expansion)
        self.seq_len = int(seq_len)
        self.mlp_t = bool(mlp_t)
        self.epsilon = float(epsilon)
        self.seed = int(seed)
        self.attention_window = int(attention_window)
        self.prefix_len = int(prefix_len)
        policy = self.dtype_policy
        if self.mlp_t:
            self.token_mixer = MLPTokenMixer(
                self.seq_len, self.expansion, self.epsilon, seed=self.seed, dtype=policy
            )
            self.self_attn = None
        else:
            self.self_attn = Attention(
                self.hidden_size,
                self.num_heads,
                seed=self.seed,
                window=self.attention_window,
                prefix_len=self.prefix_len,
                dtype=policy,
            )
            self.token_mixer = None
            self.attn_norm = RMSNorm(epsilon=self.epsilon, dtype=policy)
        self.mlp = SwiGLU(self.hidden_size, self.expansion, seed=self.seed + 2, dtype=policy)
        self.mlp_norm = RMSNorm(epsilon=self.epsilon, dtype=policy)

    def build(self, input_shape=None):
        if self.mlp_t:
            self.token_mixer.build(None)
        else:
            self.self_attn.build(None)
        self.mlp.build(None)
        self.built = True

    def call(self, h, rotary=None):
        if self.mlp_t:
            h = self.token_mixer(h)
        else:
            h = self.attn_norm(h + self.self_attn(h, rotary=rotary))
        return self.mlp_norm(h + self.mlp(h))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return config_with(
            super().get_config(),
            self,
            (
                "hidden_size",
                "num_heads",
                "expansion",
                "seq_len",
                "mlp_t",
                "epsilon",
                "seed",
                "attention_window",
                "prefix_len",
            ),
        )


@keras.saving.register_keras_serializable(package="trm_tf")
class ReasoningModule(keras.layers.Layer):
    """The shared recursive network `L_level`: h = h + injection, then `num_layers` TRM blocks.

    Args:
        num_layers: number of blocks (L_layers, 2 in the reference).
        block_kwargs: keyword arguments of every `TRMBlock` (seed is offset per block).
    """

    def __init__(self, num_layers: int, block_kwargs: dict, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.block_kwargs = dict(block_kwargs)
        self.seed = int(seed)
        # One attribute per block rather than a Python list: Keras 3 tracks lists for `weights`, but
        # tf.train.Checkpoint does not follow them, and the blocks would silently not be saved.
        for i in range(self.num_layers):
            block = TRMBlock(
                **self.block_kwargs,
                seed=self.seed + 10 * i,
                dtype=self.dtype_policy,
                name=f"layers_{i}",
            )
            setattr(self, f"layers_{i}", block)

    @property
    def blocks(self) -> list:
        """The blocks in application order."""
        return [getattr(self, f"layers_{i}") for i in range(self.num_layers)]

    def build(self, input_shape=None):
        for block in self.blocks:
            block.build(None)
        self.built = True

    def call(self, h, injection, rotary=None):
        h = h + injection
        for block in self.blocks:
            h = block(h, rotary=rotary)
        return h

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return config_with(super().get_config(), self, ("num_layers", "block_kwargs", "seed"))
