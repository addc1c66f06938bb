"""Keras 3 primitives of the Tiny Recursive Model (TRM): initializers, RMSNorm, SwiGLU, rotary embedding
and the local-attention mask, written from docs/model.md#architecture.

They follow the numerics listed in `layers` (float32 weights read in the compute dtype, RMSNorm and RoPE
in float32, no biases); `layers` builds the attention, token mixer, block and reasoning module on them,
and the backbone (`backbone.py`) its embeddings and heads. Import them from here.
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


class Bf16Rounded(keras.initializers.Initializer):
    """Wraps an initializer and rounds its float32 output to bf16-representable values (the
    reference's `H_init` / `L_init` are bfloat16 buffers; docs/model.md#initialisation)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, shape, dtype=None):
        rounded = tf.cast(tf.cast(self.base(shape, "float32"), tf.bfloat16), tf.float32)
        return tf.cast(rounded, dtype or "float32")

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base)}


def config_with(config: dict, layer, names: tuple[str, ...]) -> dict:
    """A layer's `get_config`: the base Layer's `config` plus the constructor arguments `names`, read
    from the layer's attributes of the same names."""
    config.update({n: getattr(layer, n) for n in names})
    return config


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
        return config_with(super().get_config(), self, ("axis", "epsilon"))


def lecun_dense(units: int, seed: int, dtype, name: str) -> keras.layers.Dense:
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
        self.gate_up_proj = lecun_dense(
            2 * self.intermediate_size, self.seed, self.dtype_policy, "gate_up_proj"
        )
        self.down_proj = lecun_dense(
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
        return config_with(super().get_config(), self, ("hidden_size", "expansion", "seed"))


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
        return config_with(super().get_config(), self, ("head_dim", "max_position", "base"))


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
