"""The reasoning backbone: everything a recursive reasoning model owns apart from its recursion.

`ReasoningBackbone` holds the token / position / puzzle embeddings, the shared network `L_level`
(and HRM's second network `H_level`), the lm and Q heads and the fixed initial latent vectors. How
the latents are updated during one supervision step is a small recursion object
(`trm_tf/models/recursion.py`) that the backbone calls; the recursion declares the latents it
carries (their names and initial vectors), so the carry is a dict with one [B, total_len, D]
tensor per latent (`carry_spec()`). This file holds the whole class: arguments, layers,
variables, carry, forward pass and config; its matmul FLOP count is `trm_tf/models/flops.py`.

Dtypes: `forward_dtype` "float32" runs everything in fp32. "bfloat16" / "float16" use a Keras mixed
policy (fp32 variables, low-precision compute) on every Dense / Embedding, while RMSNorm, RoPE and the
attention softmax compute in fp32; the carry is kept in the compute dtype, and the logits and Q values
are returned as float32 (computed in the compute dtype and then cast, like the reference).

Checkpoint format: the attribute names below (`embed_tokens`, `embed_pos`, `L_level`, `H_level`,
`lm_head`, `q_head`, `_H_init_var`, `_L_init_var`, `_L_inits_var`, `_puzzle_emb_var`) are the object
paths of every saved run; renaming one orphans the saved variable.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from trm_tf.models import recursion as rec
from trm_tf.models.layers import ReasoningModule
from trm_tf.models.primitives import (
    Bf16Rounded,
    RotaryEmbedding,
    TruncatedNormalLeCun,
    config_with,
    lecun_dense,
    local_window_mask,
)

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_POS_ENCODINGS = ("rope", "learned", "none")
# Seeds of the individual tensors; blocks take seed offsets from _SEED_BLOCKS upward.
_SEED_EMBED, _SEED_LM_HEAD, _SEED_POS, _SEED_H_INIT, _SEED_L_INIT, _SEED_BLOCKS = range(6)
_SEED_H_LEVEL = 50_000  # HRM's second network: disjoint from every seed above
_SEED_L_INITS = 60_000  # per-latent init rows (hier6): disjoint as well


def _check_args(forward_dtype, pos_encodings, L_layers, H_layers, puzzle_emb_ndim, puzzle_emb_len):
    """Rejects constructor arguments no backbone can be built from."""
    if forward_dtype not in _POLICIES:
        raise ValueError(f"forward_dtype must be one of {list(_POLICIES)}, got {forward_dtype!r}")
    if pos_encodings not in _POS_ENCODINGS:
        raise ValueError(f"pos_encodings must be one of {_POS_ENCODINGS}, got {pos_encodings!r}")
    if L_layers < 1 or H_layers < 0:
        raise ValueError("L_layers must be >= 1 and H_layers >= 0")
    if puzzle_emb_ndim == 0 and puzzle_emb_len != 0:
        # The reference crashes here (prefix not concatenated but carry has S + P positions);
        # reject it up front instead.
        raise ValueError("puzzle_emb_ndim == 0 requires puzzle_emb_len == 0 (no puzzle prefix)")


def _prefix_len(puzzle_emb_ndim: int, puzzle_emb_len: int, hidden_size: int) -> int:
    """Puzzle-prefix positions P: `puzzle_emb_len`, or ceil(ndim / D) when it is 0 (reference rule)."""
    n = -(puzzle_emb_ndim // -hidden_size) if puzzle_emb_len == 0 else puzzle_emb_len
    if puzzle_emb_ndim > n * hidden_size:
        raise ValueError(
            f"puzzle_emb_ndim {puzzle_emb_ndim} does not fit in {n} prefix "
            f"positions of width {hidden_size}"
        )
    return n


def _scale(x, constant: float):
    """x * constant computed in float32 and rounded once to x's dtype.

    torch multiplies a bfloat16 tensor by a Python float in float32 and rounds the product once; a
    bfloat16 constant would first round sqrt(512) = 22.627 to 22.625 (and 1/sqrt(2) to 0.70703),
    which puts a few percent of the embedding elements one bfloat16 step off. In float32 the casts
    are no-ops and the product is the same as before.
    """
    return tf.cast(tf.cast(x, tf.float32) * constant, x.dtype)


@keras.saving.register_keras_serializable(package="trm_tf")
class ReasoningBackbone(keras.Model):
    """Embeddings, shared network(s), heads and initial latents, driven by a recursion scheme.

    Trainable variables are exactly the reference's nn.Parameters (token embedding, lm_head, q_head
    weight and bias, block kernels, learned position table if any). `H_init`, `L_init`, `L_inits`
    (fixed) and `puzzle_emb` (trained by a separate sparse SignSGD) are non-trainable variables.

    Build one with `build_model` (trm_tf/models/__init__.py) or `ReasoningBackbone.create(arch, ...)`,
    which fill in the arch's defaults and reject switches the arch does not have.

    Args:
        recursion: a recursion object of `trm_tf.models.recursion` (TRMRecursion, HRMRecursion, ...);
            it decides the carry, the default cycle counts and which networks are needed.
        vocab_size: V.
        seq_len: S (tokens per example, without the puzzle prefix).
        num_puzzle_identifiers: rows of the puzzle embedding table.
        hidden_size: D.
        num_heads: attention heads; when it does not divide D the attention has head_dim
            D // num_heads and inner width num_heads * head_dim (the reference baseline's 12 heads).
        expansion: SwiGLU expansion factor.
        L_layers: blocks of the shared network `L_level`.
        H_layers: blocks of HRM's second network `H_level` (0 = no second network).
        mlp_t: MLP-over-sequence token mixer instead of attention.
        pos_encodings: "rope", "learned" or "none".
        puzzle_emb_ndim: width of a puzzle embedding row (0 disables the puzzle embedding).
        puzzle_emb_len: prefix positions P. 0 means ceil(puzzle_emb_ndim / D) (reference rule);
            must be 0 when puzzle_emb_ndim == 0.
        rms_norm_eps: RMSNorm epsilon.
        rope_theta: RoPE base.
        forward_dtype: "float32", "bfloat16" or "float16".
        remat: recompute the with-gradient network calls in the backward pass
            (`tf.recompute_grad` around each of them).
        seed: seed of every initializer (stateless; same seed -> same weights).
        attention_window: 0 = full attention (the reference). An odd w > 0 = windowed attention on
            the square puzzle grid: each cell sees its w x w neighbourhood and the puzzle-prefix
            positions, which are global (`primitives.local_window_mask`). Attention only.
    """

    def __init__(
        self,
        recursion,
        vocab_size: int,
        seq_len: int,
        num_puzzle_identifiers: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        L_layers: int = 2,
        H_layers: int = 0,
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
        _check_args(
            forward_dtype, pos_encodings, L_layers, H_layers, puzzle_emb_ndim, puzzle_emb_len
        )
        if attention_window and mlp_t:
            raise ValueError("attention_window needs attention (mlp_t=False)")
        kwargs.setdefault("name", recursion.arch)
        super().__init__(dtype=_POLICIES[forward_dtype], **kwargs)
        self.recursion = recursion
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.num_puzzle_identifiers = int(num_puzzle_identifiers)
        self.hidden_size = int(hidden_size)
        self.num_heads = int(num_heads)
        self.expansion = float(expansion)
        self.L_layers = int(L_layers)
        self.H_layers = int(H_layers)
        self.mlp_t = bool(mlp_t)
        self.pos_encodings = pos_encodings
        self.puzzle_emb_ndim = int(puzzle_emb_ndim)
        self._puzzle_emb_len_arg = int(puzzle_emb_len)
        self.puzzle_emb_len = _prefix_len(
            self.puzzle_emb_ndim, int(puzzle_emb_len), self.hidden_size
        )
        self.total_len = self.seq_len + self.puzzle_emb_len
        self.attention_window = int(attention_window)
        if self.attention_window:  # Rejects a window that does not fit the grid.
            local_window_mask(self.total_len, self.puzzle_emb_len, self.attention_window)
        self.rms_norm_eps = float(rms_norm_eps)
        self.rope_theta = float(rope_theta)
        self.forward_dtype = forward_dtype
        self.remat = bool(remat)
        self.seed = int(seed)
        self.embed_scale = math.sqrt(self.hidden_size)
        recursion.check_backbone(self)
        self._make_layers()
        # Created by build_variables(); the names are the checkpoint paths.
        self._puzzle_emb_var = self._H_init_var = self._L_init_var = self._L_inits_var = None

    def _make_layers(self) -> None:
        """Creates the sublayers, in the order that fixes `trainable_variables` (optimizer slots and
        EMA copies of saved runs are matched by that order): embeddings, L_level, heads, H_level."""
        policy = self.dtype_policy
        d = self.hidden_size
        self.embed_tokens = self._lecun_embedding(self.vocab_size, _SEED_EMBED, "embed_tokens")
        self.embed_pos = None
        if self.pos_encodings == "learned":
            self.embed_pos = self._lecun_embedding(self.total_len, _SEED_POS, "embed_pos")
        self.rotary_emb = None
        if self.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(
                d // self.num_heads,
                self.total_len,
                self.rope_theta,
                dtype=policy,
                name="rotary_emb",
            )
        block_kwargs = dict(
            hidden_size=d,
            num_heads=self.num_heads,
            expansion=self.expansion,
            seq_len=self.total_len,
            mlp_t=self.mlp_t,
            epsilon=self.rms_norm_eps,
            attention_window=self.attention_window,
            prefix_len=self.puzzle_emb_len,
        )
        self.L_level = ReasoningModule(
            self.L_layers, block_kwargs, seed=self._seed(_SEED_BLOCKS), dtype=policy, name="L_level"
        )
        # No bias; std 1/sqrt(D) (LeCun: the kernel's fan-in is D).
        self.lm_head = lecun_dense(self.vocab_size, self._seed(_SEED_LM_HEAD), policy, "lm_head")
        # Q head: weight 0, bias -5, so no example halts on its own at init.
        self.q_head = keras.layers.Dense(
            2,
            use_bias=True,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(-5.0),
            dtype=policy,
            name="q_head",
        )
        self.H_level = None
        if self.H_layers:
            seed = self.seed * 1000 + _SEED_H_LEVEL
            self.H_level = ReasoningModule(
                self.H_layers, block_kwargs, seed=seed, dtype=policy, name="H_level"
            )

    def _lecun_embedding(self, rows: int, seed_index: int, name: str) -> keras.layers.Embedding:
        """An embedding table [rows, D] with the LeCun truncated-normal init (std 1/sqrt(D))."""
        return keras.layers.Embedding(
            rows,
            self.hidden_size,
            embeddings_initializer=TruncatedNormalLeCun(
                1.0 / math.sqrt(self.hidden_size), seed=self._seed(seed_index)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def _seed(self, k: int) -> int:
        """Per-tensor seed: distinct for every tensor, fully determined by `seed`."""
        return self.seed * 1000 + k * 100 if k < _SEED_BLOCKS else self.seed * 1000 + 500 + k

    @classmethod
    def create(cls, arch: str, vocab_size: int, seq_len: int, num_puzzle_identifiers: int, **kw):
        """The model of `arch` with that arch's defaults (`rec.RECURSIONS[arch].defaults`).

        Keywords are the backbone's and the recursion's (`H_cycles`, `L_cycles`); a backbone switch
        the arch does not have (`recursion.unsupported`) raises when set to a true value.
        """
        r_cls = rec.RECURSIONS[arch]
        for k in r_cls.unsupported:
            if kw.get(k):
                raise ValueError(f"arch {arch!r} does not support {k}={kw[k]!r}")
            kw.pop(k, None)
        kw = {**r_cls.defaults, **kw}
        r_kw = {k: kw.pop(k) for k in r_cls.config_keys if k in kw}
        return cls(r_cls(**r_kw), vocab_size, seq_len, num_puzzle_identifiers, **kw)

    # ------------------------------------------------------------------ variables

    def build_variables(self) -> None:
        """Creates every variable eagerly. Safe to call under `strategy.scope()`; idempotent."""
        if self.built:
            return
        d = self.hidden_size
        if self.H_level is not None:
            self.H_level.build(None)
        self.embed_tokens.build((None,))
        if self.embed_pos is not None:
            self.embed_pos.build((None,))
        self.L_level.build(None)
        self.lm_head.build((None, d))
        self.q_head.build((None, d))
        # H_init / L_init are bf16 buffers in the reference: store their values rounded to bf16 once
        # at init (kept in a float32 variable, so the values are exactly bf16-representable).
        self._H_init_var = self._init_weight((d,), self._seed(_SEED_H_INIT), "H_init")
        self._L_init_var = self._init_weight((d,), self._seed(_SEED_L_INIT), "L_init")
        if self.puzzle_emb_ndim > 0:
            self._puzzle_emb_var = self.add_weight(
                shape=(self.num_puzzle_identifiers, self.puzzle_emb_ndim),
                initializer="zeros",
                dtype="float32",
                trainable=False,
                autocast=False,
                name="puzzle_emb",
            )
        n = self.recursion.extra_init_rows
        if n:
            seed = self.seed * 1000 + _SEED_L_INITS
            self._L_inits_var = self._init_weight((n, d), seed, "L_inits")
        self.built = True

    def _init_weight(self, shape, seed: int, name: str):
        return self.add_weight(
            shape=shape,
            initializer=Bf16Rounded(TruncatedNormalLeCun(1.0, seed=seed)),
            dtype="float32",
            trainable=False,
            autocast=False,
            name=name,
        )

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
    def L_inits(self):
        """Per-latent init rows [n, D] float32 of recursions that ask for them (hier6), else None."""
        return self._tf_variable(self._L_inits_var)

    @property
    def H_cycles(self) -> int:
        """Default outer cycles per supervision step (`inner(..., cycles=...)` overrides it)."""
        return self.recursion.H_cycles

    @property
    def L_cycles(self) -> int:
        """Default latent updates per cycle (`inner(..., cycles=...)` overrides it)."""
        return self.recursion.L_cycles

    @property
    def compute_dtype_tf(self) -> tf.DType:
        """Compute dtype of the forward (and of the carry)."""
        return tf.as_dtype(self.dtype_policy.compute_dtype)

    # ------------------------------------------------------------------ carry

    def carry_spec(self) -> dict[str, tf.TensorSpec]:
        """Latent name -> per-example tf.TensorSpec([total_len, D], compute dtype), in carry order."""
        shape = (self.total_len, self.hidden_size)
        return {k: tf.TensorSpec(shape, self.compute_dtype_tf) for k in self.recursion.carry_names}

    def gather_puzzle_rows(self, puzzle_identifiers):
        """Rows of the puzzle embedding: int32 [B] -> float32 [B, puzzle_emb_ndim]."""
        if self.puzzle_emb is None:
            raise ValueError("This model has no puzzle embedding (puzzle_emb_ndim == 0).")
        return tf.gather(self.puzzle_emb, tf.cast(puzzle_identifiers, tf.int32))

    def _broadcast(self, init, batch_size):
        v = tf.cast(tf.convert_to_tensor(init), self.compute_dtype_tf)
        return tf.broadcast_to(v[None, None, :], [batch_size, self.total_len, self.hidden_size])

    def initial_carry(self, batch_size) -> dict[str, tf.Tensor]:
        """Every latent of `carry_spec()` = its init vector at every position, [B, total_len, D]."""
        self.build_variables()
        inits = self.recursion.init_vectors(self)
        return {k: self._broadcast(v, batch_size) for k, v in inits.items()}

    def reset_carry(self, reset_mask, carry: dict) -> dict[str, tf.Tensor]:
        """where(reset_mask, the latent's init at every position, carry), per example and latent."""
        mask = tf.reshape(tf.cast(reset_mask, tf.bool), [-1, 1, 1])
        b = tf.shape(reset_mask)[0]
        inits = self.recursion.init_vectors(self)
        return {k: tf.where(mask, self._broadcast(v, b), carry[k]) for k, v in inits.items()}

    # ------------------------------------------------------------------ forward

    def input_embeddings(self, inputs, puzzle_rows=None):
        """[B, total_len, D] in the compute dtype (puzzle prefix, tokens, positions, sqrt(D) scale)."""
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
            x = _scale(x + tf.cast(pos, cdt)[None], 0.707106781)
        return _scale(x, self.embed_scale)

    def net(self, h, injection):
        """The shared network `L_level`: blocks(h + injection)."""
        return self.L_level(h, injection, rotary=self.rotary_emb)

    def h_net(self, h, injection):
        """HRM's high-level network `H_level`: blocks(h + injection)."""
        return self.H_level(h, injection, rotary=self.rotary_emb)

    def net_plain(self, h):
        """`L_level` without input injection: blocks(h), not blocks(h + 0)."""
        for block in self.L_level.blocks:
            h = block(h, rotary=self.rotary_emb)
        return h

    def maybe_remat(self, fn):
        """Gradient checkpointing of one network call when `remat` is set."""
        return tf.recompute_grad(fn) if self.remat else fn

    def inner(self, carry: dict, inputs, puzzle_rows=None, training=False, cycles=None) -> dict:
        """One supervision step: embeddings, the recursion, the heads.

        Args:
            carry: dict with every latent of `carry_spec()`, [B, total_len, D] each (cast to the
                compute dtype).
            inputs: int32 [B, seq_len] token ids.
            puzzle_rows: float32 [B, puzzle_emb_ndim] rows from `gather_puzzle_rows` (watched by the
                trainer's tape for the sparse gradient), or None when puzzle_emb_ndim == 0.
            training: unused (no dropout); kept for Keras symmetry.
            cycles: (H_cycles, L_cycles) of this step, or None for the model's defaults. A trace-time
                constant: the recursion is unrolled into the graph (a curriculum traces one function
                per depth).

        Returns:
            dict with `carry` (the new latents, stop_gradient'ed, compute dtype), `logits` float32
            [B, seq_len, V] (prefix dropped), `q_halt`, `q_continue` float32 [B], and `z_H_prev`
            (the state the heads read, entering the with-gradient part, constant) and `z_H_grad`
            (the same state leaving it, with gradient) for the recursion regulariser.
        """
        del training
        self.build_variables()
        h_cycles, l_cycles = self.recursion.resolve_cycles(cycles)
        cdt = self.compute_dtype_tf
        x = self.input_embeddings(inputs, puzzle_rows)
        carry = {k: tf.stop_gradient(tf.cast(carry[k], cdt)) for k in self.recursion.carry_names}
        carry, y_prev, y = self.recursion(self, carry, x, h_cycles, l_cycles)
        logits = self.lm_head(y)[:, self.puzzle_emb_len :]
        q = tf.cast(self.q_head(y[:, 0]), tf.float32)
        return {
            "carry": {k: tf.stop_gradient(v) for k, v in carry.items()},
            "logits": tf.cast(logits, tf.float32),
            "q_halt": q[:, 0],
            "q_continue": q[:, 1],
            "z_H_prev": y_prev,
            "z_H_grad": y,
        }

    def call(self, inputs, training=False):
        """Keras entry point: `inputs` is a dict with the carry latents, `inputs` and
        `puzzle_identifiers`."""
        rows = None
        if self.puzzle_emb_ndim > 0:
            rows = self.gather_puzzle_rows(inputs["puzzle_identifiers"])
        return self.inner(inputs, inputs["inputs"], rows, training=training)

    def num_params(self) -> int:
        """Number of trainable parameters (the reference's nn.Parameter count)."""
        self.build_variables()
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    def get_config(self):
        config = super().get_config()
        config.update(self.recursion.get_config())
        names = ("vocab_size", "seq_len", "num_puzzle_identifiers", "hidden_size", "num_heads")
        names += ("expansion", "L_layers", "mlp_t", "pos_encodings", "puzzle_emb_ndim")
        names += ("puzzle_emb_len", "rms_norm_eps", "rope_theta", "forward_dtype", "remat", "seed")
        config_with(config, self, (*names, "attention_window"))
        config["puzzle_emb_len"] = self._puzzle_emb_len_arg  # the argument (0 = derived), not P
        if self.H_layers:
            config["H_layers"] = self.H_layers
        config.pop("dtype", None)  # derived from forward_dtype
        config.pop("trainable", None)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls.create(
            config.pop("arch"),
            config.pop("vocab_size"),
            config.pop("seq_len"),
            config.pop("num_puzzle_identifiers"),
            **config,
        )
