"""Keras 3 building blocks of the Tiny Recursive Model (TRM), written from
docs/model.md#architecture.

Every layer follows the reference numerics (docs/model.md#architecture, #porting-pitfalls 5-8):

* weights are created in float32 and, under a mixed dtype policy, read in the compute dtype at each use
  (the reference casts its fp32 master weights to bf16 at every matmul);
* RMSNorm (no gain) and RoPE always compute in float32 and cast back to the input dtype;
* the attention scores Q K^T and their softmax are computed in float32, from Q and K in the compute
  dtype (a fused attention kernel's float32 accumulation); the unnormalised exp(s - max) is rounded
  to the compute dtype for the product with V and the row sum divides in float32;
* scale constants (sqrt(D), 1/sqrt(2) in the embeddings) multiply in float32 and the product is
  rounded once, as torch does for a low-precision tensor times a Python float;
* there are no biases anywhere except the Q head (which lives in `trm.py`).

The layers take `**kwargs` (name, dtype policy, ...) and implement `get_config`, following keras-hub
conventions, so they serialise like any Keras layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

# Standard deviation of a unit normal truncated to [-2, 2] is 0.8796256610342398; the reference divides
# the requested std by it so that the *truncated* distribution has exactly the requested std.
_TRUNC_LOWER, _TRUNC_UPPER = -2.0, 2.0


def _trunc_normal_comp_std(std: float) -> float:
    """Returns the pre-truncation std that gives `std` after truncation at +-2
    (docs/model.md#initialisation)."""
    a, b = _TRUNC_LOWER, _TRUNC_UPPER
    z = (math.erf(b / math.sqrt(2)) - math.erf(a / math.sqrt(2))) / 2
    c = (2 * math.pi) ** -0.5
    pdf_u = c * math.exp(-0.5 * a**2)
    pdf_l = c * math.exp(-0.5 * b**2)
    return std / math.sqrt(1 - (b * pdf_u - a * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)


def find_multiple(a: int, b: int) -> int:
    """Rounds `a` up to a multiple of `b`."""
    return (-(a // -b)) * b


def swiglu_intermediate_size(hidden_size: int, expansion: float) -> int:
    """SwiGLU intermediate width: round(expansion * h * 2/3) rounded up to a multiple of 256
    (docs/model.md#swiglu).

    Python's `round` (banker's rounding) is used on purpose: it is what the reference does.
    """
    return find_multiple(round(expansion * hidden_size * 2 / 3), 256)


# Device of the initial-value computations. A partial spec on purpose: TF merges it with the enclosing
# device scope, keeping that scope's job/replica/task and replacing only the device. Without a cluster
# it is this process's CPU; after `tf.config.experimental_connect_to_cluster` (a TPU pod client, whose
# default scope is the master worker) or inside a strategy's per-replica variable scope
# (".../task:k/device:TPU:0") it is the CPU of that same host. Either way the values come from the
# CPU kernels, never the accelerator's. A full name ("/job:localhost/...") would not exist inside a
# multi-worker process, whose devices live under "/job:worker".
HOST_CPU = "/device:CPU:0"


@keras.saving.register_keras_serializable(package="trm_tf")
class TruncatedNormalLeCun(keras.initializers.Initializer):
    """JAX-style truncated-normal initializer of the TRM reference (docs/model.md#initialisation).

    Draws u ~ U(erf(-sqrt2), erf(sqrt2)), returns sqrt2 * erfinv(u) * comp_std clipped to
    +-2 comp_std, where comp_std = std / 0.8796256... so the truncated values have std exactly `std`.
    With `std=None` the std is LeCun's 1/sqrt(fan_in), where fan_in = shape[0] (the input width of a
    Keras [in, out] kernel, i.e. the reference's `in_features`). With std == 0 the tensor is zeros.

    The draw is stateless: (seed, shape) fully determines the values, so variable creation is
    reproducible and identical under any distribution strategy. The whole computation (a float64
    draw and erfinv) runs on the host CPU, whatever device scope the call happens in, and only the
    final, cast tensor leaves it: a strategy creates variables under its accelerator's device
    scope, and XLA:TPU has partial 64-bit support and its own RNG kernels, so a TPU-placed draw
    would not give the weights a CPU run with the same seed starts from. See `HOST_CPU`.

    Args:
        std: target standard deviation, or None for 1/sqrt(shape[0]).
        seed: integer seed of this tensor (give every variable its own seed).
    """

    def __init__(self, std: float | None = None, seed: int = 0):
        self.std = None if std is None else float(std)
        self.seed = int(seed)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        std = self.std if self.std is not None else 1.0 / math.sqrt(shape[0])
        dtype = dtype or "float32"
        if std == 0:
            return tf.zeros(shape, dtype=dtype)
        comp_std = _trunc_normal_comp_std(std)
        lo = math.erf(_TRUNC_LOWER / math.sqrt(2))
        hi = math.erf(_TRUNC_UPPER / math.sqrt(2))
        with tf.device(HOST_CPU):
            # Stateless RNG keyed by (seed, a fixed stream id): no hidden global state.
            u = tf.random.stateless_uniform(
                shape, seed=[self.seed, 0x7472], minval=lo, maxval=hi, dtype=tf.float64
            )
            x = math.sqrt(2) * tf.math.erfinv(u) * comp_std
            x = tf.clip_by_value(x, _TRUNC_LOWER * comp_std, _TRUNC_UPPER * comp_std)
            return tf.cast(x, dtype)

    def get_config(self):
        return {"std": self.std, "seed": self.seed}


def rms_norm(x, axis: int = -1, epsilon: float = 1e-5):
    """Gain-less RMSNorm computed in float32 and cast back to the input dtype
    (docs/model.md#block)."""
    x = tf.convert_to_tensor(x)
    x32 = tf.cast(x, tf.float32)
    var = tf.reduce_mean(tf.square(x32), axis=axis, keepdims=True)
    return tf.cast(x32 * tf.math.rsqrt(var + epsilon), x.dtype)


@keras.saving.register_keras_serializable(package="trm_tf")
class RMSNorm(keras.layers.Layer):
    """RMSNorm without a learnable gain: x * rsqrt(mean(x^2, axis) + eps), always in float32.

    Args:
        axis: axis to normalise over. -1 (channels) everywhere except MLP-T, whose token-mixing
            residual is normalised over the sequence axis (docs/model.md#block).
        epsilon: variance epsilon (reference 1e-5).
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon
        # Dtype-preserving: never autocast the input to the layer's compute dtype.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def call(self, x):
        return rms_norm(x, axis=self.axis, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


def _lecun_dense(units: int, seed: int, dtype, name: str) -> keras.layers.Dense:
    """Bias-free Dense with the reference's truncated-normal LeCun init (std 1/sqrt(fan_in))."""
    return keras.layers.Dense(
        units,
        use_bias=False,
        kernel_initializer=TruncatedNormalLeCun(None, seed=seed),
        dtype=dtype,
        name=name,
    )


@keras.saving.register_keras_serializable(package="trm_tf")
class SwiGLU(keras.layers.Layer):
    """SwiGLU MLP over the last axis: down(silu(gate) * up), with [gate, up] = split(gate_up(x)).

    The first half of the fused `gate_up` output is the gate, the second half the up projection
    (docs/model.md#swiglu). The intermediate width is `swiglu_intermediate_size(hidden_size,
    expansion)`. No biases. SiLU is evaluated in float32 and rounded once to the compute dtype, as
    torch does for bf16 inputs.

    Args:
        hidden_size: input and output width (size of the last axis).
        expansion: expansion factor (4 in the reference).
        seed: base seed; the two kernels use seed and seed + 1.
    """

    def __init__(self, hidden_size: int, expansion: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)
        self.expansion = float(expansion)
        self.seed = int(seed)
        self.intermediate_size = swiglu_intermediate_size(self.hidden_size, self.expansion)
        self.gate_up_proj = _lecun_dense(
            2 * self.intermediate_size, self.seed, self.dtype_policy, "gate_up_proj"
        )
        self.down_proj = _lecun_dense(
            self.hidden_size, self.seed + 1, self.dtype_policy, "down_proj"
        )

    def build(self, input_shape=None):
        self.gate_up_proj.build((None, self.hidden_size))
        self.down_proj.build((None, self.intermediate_size))
        self.built = True

    def call(self, x):
        # Two matmuls on the halves of the fused kernel instead of one matmul and a split: the split
        # copies both [N, intermediate] halves forward and concatenates their gradients backward
        # (about 10% of a CPU train step, with or without XLA; BENCHMARKS.md). Same weights and math.
        shape = tf.shape(x)
        x2 = tf.reshape(x, [-1, self.hidden_size])
        kernel = tf.cast(self.gate_up_proj.kernel, x2.dtype)
        n = self.intermediate_size
        gate = tf.matmul(x2, kernel[:, :n])
        up = tf.matmul(x2, kernel[:, n:])
        act = tf.cast(tf.nn.silu(tf.cast(gate, tf.float32)), gate.dtype)
        return tf.reshape(self.down_proj(act * up), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_size": self.hidden_size, "expansion": self.expansion, "seed": self.seed}
        )
        return config


def rope_cos_sin(head_dim: int, max_position: int, base: float = 10000.0):
    """Rotary tables cos, sin of shape [max_position, head_dim], float32 (docs/model.md#positions).

    inv_freq[j] = 1 / base^(2j/head_dim); freqs = t * inv_freq; emb = concat(freqs, freqs). Computed
    in float32 like the reference; positions start at 0 on the first puzzle-prefix slot.
    """
    inv_freq = 1.0 / (
        np.float32(base) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))
    )
    t = np.arange(max_position, dtype=np.float32)
    freqs = np.outer(t, inv_freq.astype(np.float32)).astype(np.float32)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def rotate_half_matrix(head_dim: int) -> np.ndarray:
    """R [head_dim, head_dim] with x @ R = rotate_half(x) = concat(-x2, x1) over the halves of x.

    RoPE's rotate-half (not interleaved pairs) as a signed permutation: one small matmul instead of
    split + negate + concat, which is the cheaper formulation for oneDNN on CPU (no XLA) and costs
    nothing measurable under XLA.
    """
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
    half = head_dim // 2
    r = np.zeros((head_dim, head_dim), np.float32)
    r[np.arange(half) + half, np.arange(half)] = -1.0  # out[:half] = -x2
    r[np.arange(half), np.arange(half) + half] = 1.0  # out[half:] = x1
    return r


@keras.saving.register_keras_serializable(package="trm_tf")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (rotate-half) applied to Q and K in float32
    (docs/model.md#positions).

    Holds constant cos/sin tables (no variables). `call(q, k)` takes [B, T, H, head_dim] tensors,
    rotates them in float32 and returns them in their input dtype. `rotate_heads_first(qk, q_scale)`
    is the form `Attention` uses: Q and K stacked as [2, B, H, T, head_dim], rotated in one pass, with
    the attention scale folded into Q's tables (x * cos + rotate_half(x) * sin is linear in x).

    Args:
        head_dim: per-head width (hidden_size / num_heads).
        max_position: number of positions (puzzle prefix + sequence).
        base: RoPE theta (10000).
    """

    def __init__(self, head_dim: int, max_position: int, base: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.head_dim = int(head_dim)
        self.max_position = int(max_position)
        self.base = float(base)
        cos, sin = rope_cos_sin(self.head_dim, self.max_position, self.base)
        self._convert_input_args = False  # dtype-preserving, like RMSNorm
        self._allow_non_tensor_positional_args = True
        self._cos = cos
        self._sin = sin
        self._rot = rotate_half_matrix(self.head_dim)

    def _rotate(self, x, cos: np.ndarray, sin: np.ndarray):
        """x * cos + rotate_half(x) * sin in float32; cos/sin broadcast against x; input dtype out."""
        x = tf.convert_to_tensor(x)
        x32 = tf.cast(x, tf.float32)
        out = x32 * tf.constant(cos) + tf.matmul(x32, tf.constant(self._rot)) * tf.constant(sin)
        return tf.cast(out, x.dtype)

    def call(self, q, k):
        t = q.shape[1]
        # [T, 1, head_dim] broadcasts over batch and heads.
        cos, sin = self._cos[:t, None, :], self._sin[:t, None, :]
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def rotate_heads_first(self, qk, q_scale: float = 1.0):
        """[2, B, H, T, head_dim] (Q then K) -> the same, rotated, with Q multiplied by q_scale."""
        t = qk.shape[3]
        scale = np.array([q_scale, 1.0], np.float32).reshape(2, 1, 1, 1, 1)
        return self._rotate(qk, self._cos[:t] * scale, self._sin[:t] * scale)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"head_dim": self.head_dim, "max_position": self.max_position, "base": self.base}
        )
        return config


def local_window_mask(total_len: int, prefix_len: int, window: int) -> np.ndarray:
    """Boolean [T, T] "query may attend to key" mask of windowed attention on a square grid (contrib05).

    Positions `prefix_len ..` are the cells of a g x g grid in row-major order (g = sqrt(T - prefix)).
    A cell attends to the cells within the `window` x `window` square centred on it (|dr|, |dc| <=
    window // 2) and to every prefix position. A prefix position (the puzzle embedding) attends to,
    and is attended by, every position: the global tokens.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"attention_window must be a positive odd number, got {window}")
    n = total_len - prefix_len
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"windowed attention needs a square grid; the sequence has {n} cells")
    r, c = np.divmod(np.arange(n), g)
    h = window // 2
    local = (np.abs(r[:, None] - r[None, :]) <= h) & (np.abs(c[:, None] - c[None, :]) <= h)
    mask = np.ones((total_len, total_len), bool)
    mask[prefix_len:, prefix_len:] = local
    return mask


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
        self.qkv_proj = _lecun_dense(3 * self.inner_size, self.seed, self.dtype_policy, "qkv_proj")
        self.o_proj = _lecun_dense(self.hidden_size, self.seed + 1, self.dtype_policy, "o_proj")

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
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "seed": self.seed,
                "window": self.window,
                "prefix_len": self.prefix_len,
            }
        )
        return config


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
        config = super().get_config()
        config.update(
            {
                "seq_len": self.seq_len,
                "expansion": self.expansion,
                "epsilon": self.epsilon,
                "seed": self.seed,
            }
        )
        return config


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
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "expansion": self.expansion,
                "seq_len": self.seq_len,
                "mlp_t": self.mlp_t,
                "epsilon": self.epsilon,
                "seed": self.seed,
                "attention_window": self.attention_window,
                "prefix_len": self.prefix_len,
            }
        )
        return config


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
        config = super().get_config()
        config.update(
            {"num_layers": self.num_layers, "block_kwargs": self.block_kwargs, "seed": self.seed}
        )
        return config
