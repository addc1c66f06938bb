"""The Tiny Recursive Model (TRM) inner network in Keras 3 (docs/model.md#architecture, #flops).

`TRM.inner` performs exactly one supervision step of the reference's
`TinyRecursiveReasoningModel_ACTV1_Inner.forward`: input embedding (with gradient), H_cycles - 1
recursion cycles without gradient, one cycle with gradient, then the output and Q heads. The ACT
wrapper (halting, carry bookkeeping across supervision steps) lives in `trm_tf/act.py`.

Dtypes: `forward_dtype` "float32" runs everything in fp32. "bfloat16" / "float16" use a Keras mixed
policy (fp32 variables, low-precision compute) on every Dense / Embedding, while RMSNorm, RoPE and the
attention softmax compute in fp32; the carry is kept in the compute dtype, and the logits and Q values
are returned as float32 (computed in the compute dtype and then cast, like the reference).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from trm_tf.models.layers import (
    ReasoningModule,
    RotaryEmbedding,
    TruncatedNormalLeCun,
    local_window_mask,
    swiglu_intermediate_size,
)

try:  # Pauses every active GradientTape; what tf.custom_gradient itself uses.
    from tensorflow.python.eager.record import stop_recording as _stop_recording
except ImportError:  # pragma: no cover - older/newer TF layouts: stop_gradient alone is still exact
    import contextlib

    _stop_recording = contextlib.nullcontext

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_POS_ENCODINGS = ("rope", "learned", "none")
# Seeds of the individual tensors; blocks take seed offsets from _SEED_BLOCKS upward.
_SEED_EMBED, _SEED_LM_HEAD, _SEED_POS, _SEED_H_INIT, _SEED_L_INIT, _SEED_BLOCKS = range(6)


def _bf16_round(x):
    """Rounds float32 values to the nearest bfloat16-representable float32 (round-to-nearest-even)."""
    return tf.cast(tf.cast(x, tf.bfloat16), tf.float32)


@keras.saving.register_keras_serializable(package="trm_tf")
class TRM(keras.Model):
    """Tiny Recursive Model, the reference's `TinyRecursiveReasoningModel_ACTV1_Inner`
    (docs/model.md#architecture).

    One shared network (`L_level`, `L_layers` post-norm blocks) is applied
    H_cycles * (L_cycles + 1) times per supervision step:
    z_L <- net(z_L + (z_H + x)) L_cycles times, then z_H <- net(z_H + z_L), repeated H_cycles times,
    with gradient only through the last cycle.

    Trainable variables are exactly the reference's nn.Parameters (token embedding, lm_head, q_head
    weight and bias, block kernels, learned position table if any). `H_init`, `L_init` (fixed) and
    `puzzle_emb` (trained by a separate sparse SignSGD) are non-trainable variables.

    Args:
        vocab_size: V.
        seq_len: S (tokens per example, without the puzzle prefix).
        num_puzzle_identifiers: rows of the puzzle embedding table.
        hidden_size: D.
        num_heads: attention heads.
        expansion: SwiGLU expansion factor.
        L_layers: blocks in the shared network.
        H_cycles: T (outer cycles; the first T-1 run without gradient).
        L_cycles: n (z_L updates per cycle).
        mlp_t: MLP-over-sequence token mixer instead of attention.
        pos_encodings: "rope", "learned" or "none".
        puzzle_emb_ndim: width of a puzzle embedding row (0 disables the puzzle embedding).
        puzzle_emb_len: prefix positions P. 0 means ceil(puzzle_emb_ndim / D) (reference rule);
            must be 0 when puzzle_emb_ndim == 0.
        rms_norm_eps: RMSNorm epsilon.
        rope_theta: RoPE base.
        forward_dtype: "float32", "bfloat16" or "float16".
        remat: recompute the with-gradient cycle's activations in the backward pass
            (`tf.recompute_grad` around each network call).
        seed: seed of every initializer (stateless; same seed -> same weights).
        attention_window: 0 = full attention (the reference). An odd w > 0 = windowed attention on
            the square puzzle grid: each cell sees its w x w neighbourhood and the puzzle-prefix
            positions, which are global (contrib05; `layers.local_window_mask`). Attention only.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_puzzle_identifiers: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        L_layers: int = 2,
        H_cycles: int = 3,
        L_cycles: int = 6,
        mlp_t: bool = False,
        pos_encodings: str = "rope",
        puzzle_emb_ndim: int = 512,
        puzzle_emb_len: int = 16,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        forward_dtype: str = "float32",
        remat: bool = False,
        seed: int = 0,
        attention_window: int = 0,
        **kwargs,
    ):
        if forward_dtype not in _POLICIES:
            raise ValueError(
                f"forward_dtype must be one of {list(_POLICIES)}, got {forward_dtype!r}"
            )
        if pos_encodings not in _POS_ENCODINGS:
            raise ValueError(
                f"pos_encodings must be one of {_POS_ENCODINGS}, got {pos_encodings!r}"
            )
        if H_cycles < 1 or L_cycles < 1 or L_layers < 1:
            raise ValueError("H_cycles, L_cycles and L_layers must all be >= 1")
        if puzzle_emb_ndim == 0 and puzzle_emb_len != 0:
            # The reference crashes here (prefix not concatenated but carry has S + P positions,
            # docs/model.md#input-embedding); reject it up front instead.
            raise ValueError("puzzle_emb_ndim == 0 requires puzzle_emb_len == 0 (no puzzle prefix)")
        kwargs.setdefault("name", "trm")
        super().__init__(dtype=_POLICIES[forward_dtype], **kwargs)
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.num_puzzle_identifiers = int(num_puzzle_identifiers)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.expansion = float(expansion)
        self.L_layers = int(L_layers)
        self.H_cycles = int(H_cycles)
        self.L_cycles = int(L_cycles)
        self.mlp_t = bool(mlp_t)
        self.pos_encodings = pos_encodings
        self.puzzle_emb_ndim = int(puzzle_emb_ndim)
        self._puzzle_emb_len_arg = int(puzzle_emb_len)
        self.puzzle_emb_len = (
            -(self.puzzle_emb_ndim // -self.hidden_size) if puzzle_emb_len == 0 else puzzle_emb_len
        )
        if self.puzzle_emb_ndim > self.puzzle_emb_len * self.hidden_size:
            raise ValueError(
                f"puzzle_emb_ndim {puzzle_emb_ndim} does not fit in {self.puzzle_emb_len} prefix "
                f"positions of width {hidden_size}"
            )
        self.total_len = self.seq_len + self.puzzle_emb_len
        self.attention_window = int(attention_window)
        if self.attention_window:
            if self.mlp_t:
                raise ValueError("attention_window needs attention (mlp_t=False)")
            local_window_mask(
                self.total_len, self.puzzle_emb_len, self.attention_window
            )  # validates
        self.rms_norm_eps = float(rms_norm_eps)
        self.rope_theta = float(rope_theta)
        self.forward_dtype = forward_dtype
        self.remat = bool(remat)
        self.seed = int(seed)
        self.embed_scale = math.sqrt(self.hidden_size)

        policy = self.dtype_policy
        d = self.hidden_size
        std_d = 1.0 / math.sqrt(d)
        self.embed_tokens = keras.layers.Embedding(
            self.vocab_size,
            d,
            embeddings_initializer=TruncatedNormalLeCun(std_d, seed=self._seed(_SEED_EMBED)),
            dtype=policy,
            name="embed_tokens",
        )
        self.embed_pos = None
        if pos_encodings == "learned":
            self.embed_pos = keras.layers.Embedding(
                self.total_len,
                d,
                embeddings_initializer=TruncatedNormalLeCun(std_d, seed=self._seed(_SEED_POS)),
                dtype=policy,
                name="embed_pos",
            )
        self.rotary_emb = None
        if pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(
                d // self.num_heads,
                self.total_len,
                self.rope_theta,
                dtype=policy,
                name="rotary_emb",
            )
        self.L_level = ReasoningModule(
            self.L_layers,
            dict(
                hidden_size=d,
                num_heads=self.num_heads,
                expansion=self.expansion,
                seq_len=self.total_len,
                mlp_t=self.mlp_t,
                epsilon=self.rms_norm_eps,
                attention_window=self.attention_window,
                prefix_len=self.puzzle_emb_len,
            ),
            seed=self._seed(_SEED_BLOCKS),
            dtype=policy,
            name="L_level",
        )
        self.lm_head = keras.layers.Dense(
            self.vocab_size,
            use_bias=False,
            kernel_initializer=TruncatedNormalLeCun(std_d, seed=self._seed(_SEED_LM_HEAD)),
            dtype=policy,
            name="lm_head",
        )
        # Q head: weight 0, bias -5, so no example halts on its own at init
        # (docs/model.md#initialisation).
        self.q_head = keras.layers.Dense(
            2,
            use_bias=True,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(-5.0),
            dtype=policy,
            name="q_head",
        )
        self._puzzle_emb_var = None
        self._H_init_var = None
        self._L_init_var = None

    def _seed(self, k: int) -> int:
        """Per-tensor seed: distinct for every tensor, fully determined by `seed`."""
        return self.seed * 1000 + k * 100 if k < _SEED_BLOCKS else self.seed * 1000 + 500 + k

    # ------------------------------------------------------------------ variables

    def build_variables(self) -> None:
        """Creates every variable eagerly. Safe to call under `strategy.scope()`; idempotent."""
        if self.built:
            return
        d = self.hidden_size
        self.embed_tokens.build((None,))
        if self.embed_pos is not None:
            self.embed_pos.build((None,))
        self.L_level.build(None)
        self.lm_head.build((None, d))
        self.q_head.build((None, d))
        # H_init / L_init are bf16 buffers in the reference: store their values rounded to bf16 once
        # at init (kept in a float32 variable, so the values are exactly bf16-representable).
        self._H_init_var = self.add_weight(
            shape=(d,),
            initializer=_Bf16Rounded(TruncatedNormalLeCun(1.0, seed=self._seed(_SEED_H_INIT))),
            dtype="float32",
            trainable=False,
            autocast=False,
            name="H_init",
        )
        self._L_init_var = self.add_weight(
            shape=(d,),
            initializer=_Bf16Rounded(TruncatedNormalLeCun(1.0, seed=self._seed(_SEED_L_INIT))),
            dtype="float32",
            trainable=False,
            autocast=False,
            name="L_init",
        )
        if self.puzzle_emb_ndim > 0:
            self._puzzle_emb_var = self.add_weight(
                shape=(self.num_puzzle_identifiers, self.puzzle_emb_ndim),
                initializer="zeros",
                dtype="float32",
                trainable=False,
                autocast=False,
                name="puzzle_emb",
            )
        self.built = True

    def build(self, input_shape=None):
        """Keras hook; all shapes are known from the constructor."""
        self.build_variables()

    @staticmethod
    def _tf_variable(v):
        return None if v is None else v.value  # autocast=False: the underlying tf.Variable

    @property
    def puzzle_emb(self):
        """Puzzle embedding table, non-trainable tf.Variable [num_ids, ndim] float32, or None."""
        return self._tf_variable(self._puzzle_emb_var)

    @property
    def H_init(self):
        """Initial z_H vector, non-trainable tf.Variable [D] float32 (bf16-representable values)."""
        return self._tf_variable(self._H_init_var)

    @property
    def L_init(self):
        """Initial z_L vector, non-trainable tf.Variable [D] float32 (bf16-representable values)."""
        return self._tf_variable(self._L_init_var)

    @property
    def compute_dtype_tf(self) -> tf.DType:
        """Compute dtype of the forward (and of the carry)."""
        return tf.as_dtype(self.dtype_policy.compute_dtype)

    def num_params(self) -> int:
        """Number of trainable parameters (the reference's nn.Parameter count,
        docs/model.md#parameter-counts)."""
        self.build_variables()
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    # ------------------------------------------------------------------ carry

    def gather_puzzle_rows(self, puzzle_identifiers):
        """Rows of the puzzle embedding: int32 [B] -> float32 [B, puzzle_emb_ndim]."""
        if self.puzzle_emb is None:
            raise ValueError("This model has no puzzle embedding (puzzle_emb_ndim == 0).")
        return tf.gather(self.puzzle_emb, tf.cast(puzzle_identifiers, tf.int32))

    def _broadcast_init(self, init, batch_size):
        v = tf.cast(tf.convert_to_tensor(init), self.compute_dtype_tf)
        return tf.broadcast_to(v[None, None, :], [batch_size, self.total_len, self.hidden_size])

    def initial_carry(self, batch_size: int):
        """(z_H, z_L), each [B, total_len, D] in the compute dtype, = H_init / L_init everywhere."""
        self.build_variables()
        return (
            self._broadcast_init(self.H_init, batch_size),
            self._broadcast_init(self.L_init, batch_size),
        )

    def reset_carry(self, reset_mask, z_H, z_L):
        """docs/model.md#carry-reset: where(reset_mask, H_init / L_init at every position, carry),
        per example."""
        mask = tf.reshape(tf.cast(reset_mask, tf.bool), [-1, 1, 1])
        b = tf.shape(z_H)[0]
        return (
            tf.where(mask, self._broadcast_init(self.H_init, b), z_H),
            tf.where(mask, self._broadcast_init(self.L_init, b), z_L),
        )

    # ------------------------------------------------------------------ forward

    def input_embeddings(self, inputs, puzzle_rows=None):
        """docs/model.md#input-embedding: [B, total_len, D] in the compute dtype (puzzle prefix,
        tokens, pos, scale)."""
        cdt = self.compute_dtype_tf
        x = self.embed_tokens(tf.cast(inputs, tf.int32))
        x = tf.cast(x, cdt)
        if self.puzzle_emb_ndim > 0:
            if puzzle_rows is None:
                raise ValueError("puzzle_rows is required when puzzle_emb_ndim > 0")
            pe = tf.cast(puzzle_rows, cdt)
            pad = self.puzzle_emb_len * self.hidden_size - self.puzzle_emb_ndim
            if pad > 0:
                pe = tf.pad(pe, [[0, 0], [0, pad]])
            pe = tf.reshape(pe, [-1, self.puzzle_emb_len, self.hidden_size])
            x = tf.concat([pe, x], axis=1)
        if self.embed_pos is not None:
            pos = self.embed_pos(tf.range(self.total_len, dtype=tf.int32))
            x = tf.constant(0.707106781, cdt) * (x + tf.cast(pos, cdt)[None])
        return tf.constant(self.embed_scale, cdt) * x

    def _net(self, h, injection):
        return self.L_level(h, injection, rotary=self.rotary_emb)

    def _maybe_remat(self, fn):
        """Gradient checkpointing of one network call when `remat` is set."""
        return tf.recompute_grad(fn) if self.remat else fn

    def _latent_cycle(self, z_H, z_L, x, net):
        for _ in range(self.L_cycles):
            z_L = net(z_L, z_H + x)  # inj = z_H + x first, then z_L + inj (bf16 rounding order)
        z_H = net(z_H, z_L)
        return z_H, z_L

    def _recursion_no_grad(self, z_H, z_L, x):
        """The first H_cycles - 1 cycles (run by `inner` with recording stopped)."""
        for _ in range(self.H_cycles - 1):
            z_H, z_L = self._latent_cycle(z_H, z_L, x, self._net)
        return z_H, z_L

    def _recursion_grad(self, z_H, z_L, x):
        """The last cycle, with gradient."""
        return self._latent_cycle(z_H, z_L, x, self._maybe_remat(self._net))

    def _block_calls(self) -> tuple[int, int]:
        """(block applications per supervision step, of which with gradient)."""
        return (
            self.H_cycles * (self.L_cycles + 1) * self.L_layers,
            (self.L_cycles + 1) * self.L_layers,
        )

    def inner(self, z_H, z_L, inputs, puzzle_rows=None, training=False):
        """One supervision step (docs/model.md#recursion).

        Args:
            z_H: carry [B, total_len, D] (compute dtype; cast if not).
            z_L: carry [B, total_len, D].
            inputs: int32 [B, seq_len] token ids.
            puzzle_rows: float32 [B, puzzle_emb_ndim] rows from `gather_puzzle_rows` (watched by the
                trainer's tape for the sparse gradient), or None when puzzle_emb_ndim == 0.
            training: unused (no dropout); kept for Keras symmetry.

        Returns:
            dict with `z_H`, `z_L` (new carry, stop_gradient'ed, compute dtype), `logits` float32
            [B, seq_len, V] (prefix dropped), `q_halt` float32 [B], `q_continue` float32 [B], and
            `z_H_prev` (z_H entering the with-gradient cycle, constant) and `z_H_grad` (z_H leaving
            it, with gradient) for the recursion regulariser.
        """
        del training
        self.build_variables()
        cdt = self.compute_dtype_tf
        x = self.input_embeddings(inputs, puzzle_rows)
        z_H = tf.stop_gradient(tf.cast(z_H, cdt))
        z_L = tf.stop_gradient(tf.cast(z_L, cdt))

        # No-grad cycles: not recorded on any tape (no activation memory kept), and
        # stop_gradient'ed on both sides so graph-mode gradients are pruned here as well.
        with _stop_recording():
            z_H, z_L = self._recursion_no_grad(z_H, z_L, tf.stop_gradient(x))
            z_H = tf.stop_gradient(z_H)
            z_L = tf.stop_gradient(z_L)
        z_H_prev = z_H
        z_H, z_L = self._recursion_grad(z_H, z_L, x)

        logits = self.lm_head(z_H)[:, self.puzzle_emb_len :]
        q = tf.cast(self.q_head(z_H[:, 0]), tf.float32)
        return {
            "z_H": tf.stop_gradient(z_H),
            "z_L": tf.stop_gradient(z_L),
            "logits": tf.cast(logits, tf.float32),
            "q_halt": q[:, 0],
            "q_continue": q[:, 1],
            # For the recursion regulariser (contrib04): z_H before the with-gradient cycle (constant)
            # and after it (with gradient). Both are tensors the step computes anyway: no extra work.
            "z_H_prev": z_H_prev,
            "z_H_grad": z_H,
        }

    def call(self, inputs, training=False):
        """Keras entry point: `inputs` is a dict with z_H, z_L, inputs and puzzle_identifiers."""
        rows = None
        if self.puzzle_emb_ndim > 0:
            rows = self.gather_puzzle_rows(inputs["puzzle_identifiers"])
        return self.inner(inputs["z_H"], inputs["z_L"], inputs["inputs"], rows, training=training)

    # ------------------------------------------------------------------ accounting

    def block_flops(self) -> int:
        """Matmul FLOPs of one block for one example (docs/model.md#flops)."""
        t, d = self.total_len, self.hidden_size
        i_ch = swiglu_intermediate_size(d, self.expansion)
        if self.mlp_t:
            i_t = swiglu_intermediate_size(t, self.expansion)
            return t * 6 * d * i_ch + d * 6 * t * i_t
        return t * (8 * d * d + 6 * d * i_ch) + 4 * t * t * d

    def flops_per_example(self, train: bool = True) -> int:
        """Matmul FLOPs per example of one supervision step (docs/model.md#flops).

        Forward = H_cycles * (L_cycles + 1) * L_layers blocks + heads (lm_head on all positions,
        q_head). With train=True adds the backward, 2x the with-gradient part (the last cycle's
        (L_cycles + 1) * L_layers blocks and the heads).
        """
        heads = 2 * self.total_len * self.hidden_size * self.vocab_size + 4 * self.hidden_size
        blk = self.block_flops()
        n_fwd, n_grad = self._block_calls()
        fwd = n_fwd * blk + heads
        if not train:
            return int(fwd)
        return int(fwd + 2 * (n_grad * blk + heads))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "seq_len": self.seq_len,
                "num_puzzle_identifiers": self.num_puzzle_identifiers,
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "expansion": self.expansion,
                "L_layers": self.L_layers,
                "H_cycles": self.H_cycles,
                "L_cycles": self.L_cycles,
                "mlp_t": self.mlp_t,
                "pos_encodings": self.pos_encodings,
                "puzzle_emb_ndim": self.puzzle_emb_ndim,
                "puzzle_emb_len": self._puzzle_emb_len_arg,
                "rms_norm_eps": self.rms_norm_eps,
                "rope_theta": self.rope_theta,
                "forward_dtype": self.forward_dtype,
                "remat": self.remat,
                "seed": self.seed,
                "attention_window": self.attention_window,
            }
        )
        config.pop("dtype", None)  # derived from forward_dtype
        config.pop("trainable", None)
        return config


class _Bf16Rounded(keras.initializers.Initializer):
    """Wraps an initializer and rounds its float32 output to bf16-representable values."""

    def __init__(self, base):
        self.base = base

    def __call__(self, shape, dtype=None):
        return tf.cast(_bf16_round(self.base(shape, "float32")), dtype or "float32")

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base)}
