"""Baseline variants of TRM behind `TRM`'s interface (docs/model.md#variants): single-z TRM,
six-state hierarchical TRM and the plain-transformer baseline.

Every class subclasses `TRM` and keeps its whole public interface (`inner`, `initial_carry`,
`reset_carry`, `num_params`, `flops_per_example`, `build_variables`, `get_config`): embeddings,
blocks, heads, dtypes and the "first H_cycles - 1 cycles without gradient" machinery of `TRM.inner`
are inherited, only the recursion methods are overridden. The carry stays two tensors (z_H, z_L):

* `TRMSingleZ` (reference `trm_singlez.py`): the single state z lives in the z_H slot; the z_L slot
  is passed through untouched (it only ever holds L_init). Carry shapes = TRM's.
* `TRMHier6` (reference `trm_hier6.py`): z_H plus six z_L states. The six states are packed along
  the hidden axis of the z_L slot, which is therefore [B, total_len, 6 * D] (slot k = columns
  k*D .. (k+1)*D). `carry_shape()` returns the per-example shapes; the trainer's `CarryState` must
  read it (TRM's own carry is [B, total_len, D] for both tensors).
* `TransformerBaseline` (reference `transformers_baseline.py`, `Model_ACTV2`): `L_layers` blocks
  applied once per supervision step, z_H <- net(z_H + x), with gradient; z_L passes through.

Every class has `carry_shape()`; for the first and last it equals TRM's carry shape.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from trm_tf.models.layers import (
    TruncatedNormalLeCun,
    swiglu_intermediate_size,
)
from trm_tf.models.trm import TRM, _Bf16Rounded

HIER_SLOTS = 6  # number of z_L states of trm_hier6 (fixed in the reference)


def _carry_shape(model) -> tuple[tuple[int, int], tuple[int, int]]:
    t, d = model.total_len, model.hidden_size
    return (t, d), (t, d)


# ---------------------------------------------------------------------------------- single z


@keras.saving.register_keras_serializable(package="trm_tf")
class TRMSingleZ(TRM):
    """TRM with a single latent state z (docs/model.md#variants, "trm_singlez").

    One supervision step, H_cycles times (the first H_cycles - 1 without gradient):
    z <- net(z + x) L_cycles times, then z <- net(z) (no injection). lm_head and q_head read z.

    Carry: z is kept in the z_H slot and initialised / reset to `L_init` (the reference's only init
    buffer is `L_init`). The z_L slot is never read and is returned unchanged (stop_gradient'ed), so
    after a reset it holds L_init forever. `H_init` exists (inherited) but is unused.

    Constructor arguments, parameters and FLOPs are exactly TRM's (same number of network calls).
    """

    # TRM's keywords exactly; build_model reads the accepted config keys from `config_signature`.
    config_signature = TRM.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "trm_singlez")
        super().__init__(*args, **kwargs)

    def carry_shape(self):
        """Per-example shapes of (z_H, z_L): both (total_len, D)."""
        return _carry_shape(self)

    def initial_carry(self, batch_size: int):
        """(z, unused), both = L_init at every position, [B, total_len, D] in the compute dtype."""
        self.build_variables()
        z = self._broadcast_init(self.L_init, batch_size)
        return z, z

    def reset_carry(self, reset_mask, z_H, z_L):
        """where(reset_mask, L_init everywhere, carry) for both slots."""
        mask = tf.reshape(tf.cast(reset_mask, tf.bool), [-1, 1, 1])
        init = self._broadcast_init(self.L_init, tf.shape(z_H)[0])
        return tf.where(mask, init, z_H), tf.where(mask, init, z_L)

    def _net_plain(self, h):
        """The network without input injection: net(z), not net(z + 0)."""
        for block in self.L_level.blocks:
            h = block(h, rotary=self.rotary_emb)
        return h

    def _z_cycle(self, z, x, net, net_plain):
        for _ in range(self.L_cycles):
            z = net(z, x)  # net(z + x)
        return net_plain(z)

    def _recursion_no_grad(self, z_H, z_L, x):
        for _ in range(self.H_cycles - 1):
            z_H = self._z_cycle(z_H, x, self._net, self._net_plain)
        return z_H, z_L

    def _recursion_grad(self, z_H, z_L, x):
        z_H = self._z_cycle(
            z_H, x, self._maybe_remat(self._net), self._maybe_remat(self._net_plain)
        )
        return z_H, z_L


# ---------------------------------------------------------------------------------- hier6


@keras.saving.register_keras_serializable(package="trm_tf")
class TRMHier6(TRM):
    """TRM with six z_L states (docs/model.md#variants, "trm_hier6").

    One cycle (H_cycles per step, the first H_cycles - 1 without gradient), with s = z_1 + ... + z_6
    summed left to right:
    for k in 0 .. L_cycles - 1: z_{k+1} <- net(s + (z_H + x)); then z_H <- net(z_H + s).
    Slots L_cycles+1 .. 6 are never updated (they keep their init values). Heads read z_H.

    Carry: z_H [B, T, D] as in TRM; z_L [B, T, 6 * D] holds the six states side by side along the
    hidden axis (see `carry_shape`). Inits: `H_init` as TRM and six extra bf16-valued init vectors
    `L_inits` [6, D] (the reference's L1_init .. L6_init); TRM's `L_init` is unused.

    Args: exactly TRM's. Raises ValueError when L_cycles > 6 (also checked at every forward, since
    a curriculum may change L_cycles after construction).
    """

    # TRM's keywords exactly; build_model reads the accepted config keys from `config_signature`.
    config_signature = TRM.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "trm_hier6")
        super().__init__(*args, **kwargs)
        self._check_cycles()
        self._L_inits_var = None

    def _check_cycles(self):
        if self.L_cycles > HIER_SLOTS:
            raise ValueError(
                f"trm_hier6 has {HIER_SLOTS} z_L states and needs L_cycles <= {HIER_SLOTS}, "
                f"got L_cycles={self.L_cycles}"
            )

    def build_variables(self) -> None:
        """Creates every variable eagerly, including `L_inits`. Idempotent."""
        if self.built:
            return
        super().build_variables()
        self._L_inits_var = self.add_weight(
            shape=(HIER_SLOTS, self.hidden_size),
            initializer=_Bf16Rounded(
                TruncatedNormalLeCun(1.0, seed=self.seed * 1000 + 60_000)  # disjoint from TRM's
            ),
            dtype="float32",
            trainable=False,
            autocast=False,
            name="L_inits",
        )

    @property
    def L_inits(self):
        """Initial values of the six z_L states, non-trainable tf.Variable [6, D] float32."""
        return self._tf_variable(self._L_inits_var)

    def carry_shape(self):
        """Per-example shapes of (z_H, z_L): (total_len, D) and (total_len, 6 * D)."""
        return (self.total_len, self.hidden_size), (self.total_len, HIER_SLOTS * self.hidden_size)

    def _broadcast_L_inits(self, batch_size):
        v = tf.cast(tf.reshape(tf.convert_to_tensor(self.L_inits), [-1]), self.compute_dtype_tf)
        return tf.broadcast_to(
            v[None, None, :], [batch_size, self.total_len, HIER_SLOTS * self.hidden_size]
        )

    def initial_carry(self, batch_size: int):
        """(z_H [B, T, D] = H_init, z_L [B, T, 6 D] = the six L inits side by side)."""
        self.build_variables()
        return self._broadcast_init(self.H_init, batch_size), self._broadcast_L_inits(batch_size)

    def reset_carry(self, reset_mask, z_H, z_L):
        """where(reset_mask, H_init / the six L inits, carry), per example."""
        mask = tf.reshape(tf.cast(reset_mask, tf.bool), [-1, 1, 1])
        b = tf.shape(z_H)[0]
        return (
            tf.where(mask, self._broadcast_init(self.H_init, b), z_H),
            tf.where(mask, self._broadcast_L_inits(b), z_L),
        )

    @staticmethod
    def _sum(zs):
        s = zs[0]
        for z in zs[1:]:  # left to right, as the reference (matters for bf16 rounding)
            s = s + z
        return s

    def _latent_cycle(self, z_H, z_L, x, net):
        self._check_cycles()
        zs = tf.split(z_L, HIER_SLOTS, axis=-1)
        for k in range(self.L_cycles):
            zs[k] = net(self._sum(zs), z_H + x)  # inj = z_H + x first, then s + inj
        z_H = net(z_H, self._sum(zs))
        return z_H, tf.concat(zs, axis=-1)


# ---------------------------------------------------------------------------------- transformer


@keras.saving.register_keras_serializable(package="trm_tf")
class TransformerBaseline(TRM):
    """Plain transformer baseline (docs/model.md#variants; reference `Model_ACTV2`).

    One supervision step = one pass of `L_layers` post-norm attention blocks (the reference's
    `H_layers`, 8) with gradient: z_H <- net(z_H + x); heads read z_H (q_head at position 0); the
    new carry is z_H detached, reset to `H_init`. The z_L slot is passed through unchanged (holds
    L_init after a reset). No recursion: H_cycles / L_cycles are accepted (the trainer's config
    always has them, and a curriculum overrides them) but have no effect. Parameters are TRM's with
    `L_layers` blocks; with num_heads not dividing D (the reference's 12 heads at D=512) attention
    has head_dim = D // num_heads and inner width num_heads * head_dim (504), as in the reference.

    Args:
        vocab_size, seq_len, num_puzzle_identifiers: as TRM.
        hidden_size: D.
        num_heads: attention heads (12 in the reference config).
        expansion: SwiGLU expansion.
        L_layers: blocks (8 in the reference config, where it is called H_layers).
        H_cycles, L_cycles: accepted for config compatibility, unused.
        mlp_t: must be False (the reference baseline has no MLP-T).
        pos_encodings: "rope" (reference default), "learned" or "none" (the reference raises on
            "none"; it is allowed here).
        puzzle_emb_ndim: puzzle embedding width.
        puzzle_emb_len: prefix positions; 0 (default) = ceil(puzzle_emb_ndim / D), the reference's
            only rule (1 at ndim = D).
        rms_norm_eps, rope_theta, forward_dtype, remat, seed: as TRM.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_puzzle_identifiers: int,
        hidden_size: int = 512,
        num_heads: int = 12,
        expansion: float = 4.0,
        L_layers: int = 8,
        H_cycles: int = 1,
        L_cycles: int = 1,
        mlp_t: bool = False,
        pos_encodings: str = "rope",
        puzzle_emb_ndim: int = 512,
        puzzle_emb_len: int = 0,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        forward_dtype: str = "float32",
        remat: bool = False,
        seed: int = 0,
        **kwargs,
    ):
        if mlp_t:
            raise ValueError(
                "the transformer baseline has no MLP-T token mixer: set model.mlp_t=False"
            )
        kwargs.setdefault("name", "transformer")
        super().__init__(
            vocab_size,
            seq_len,
            num_puzzle_identifiers,
            hidden_size=hidden_size,
            num_heads=num_heads,  # Attention handles D % num_heads != 0 (inner width H * head_dim)
            expansion=expansion,
            L_layers=L_layers,
            H_cycles=max(int(H_cycles), 1),
            L_cycles=max(int(L_cycles), 1),
            mlp_t=False,
            pos_encodings=pos_encodings,
            puzzle_emb_ndim=puzzle_emb_ndim,
            puzzle_emb_len=puzzle_emb_len,
            rms_norm_eps=rms_norm_eps,
            rope_theta=rope_theta,
            forward_dtype=forward_dtype,
            remat=remat,
            seed=seed,
            **kwargs,
        )

    def carry_shape(self):
        """Per-example shapes of (z_H, z_L): both (total_len, D)."""
        return _carry_shape(self)

    def _recursion_no_grad(self, z_H, z_L, x):
        return z_H, z_L  # no recursion: nothing runs without gradient

    def _recursion_grad(self, z_H, z_L, x):
        return self._maybe_remat(self._net)(z_H, x), z_L

    def _block_calls(self) -> tuple[int, int]:
        return self.L_layers, self.L_layers

    def block_flops(self) -> int:
        """Matmul FLOPs of one block for one example: qkv, o, SwiGLU and QK^T / AV
        (docs/model.md#flops with the attention's inner width H * head_dim in place of D)."""
        t, d = self.total_len, self.hidden_size
        a = self.num_heads * (d // self.num_heads)
        i_ch = swiglu_intermediate_size(d, self.expansion)
        return t * (2 * d * 3 * a + 2 * a * d + 6 * d * i_ch) + 4 * t * t * a
