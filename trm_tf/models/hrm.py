"""The HRM inner network (docs/model.md#variants, "hrm") behind the same `inner` interface as `TRM`.

Differences from TRM (everything else, embeddings, blocks, heads, carry, dtypes, is shared):

* two networks, `H_level` (H_layers blocks) and `L_level` (L_layers blocks), 4 blocks each by default;
* H_cycles=2, L_cycles=2 and a one-position puzzle prefix (puzzle_emb_len 0 = ceil(ndim / D) = 1);
* 1-step gradient: only the very last z_L update and the very last z_H update carry gradient; every
  earlier update (H_cycles * L_cycles - 1 z_L updates and H_cycles - 1 z_H updates) runs without it.

Attention only (HRM has no MLP-T). The ACT-side differences of HRM (halting when q_halt > q_continue,
the bootstrapped q_continue target) belong to the ACT wrapper, not to this class.
"""

from __future__ import annotations

import keras

from trm_tf.models.layers import ReasoningModule
from trm_tf.models.trm import TRM


@keras.saving.register_keras_serializable(package="trm_tf")
class HRM(TRM):
    """Hierarchical Reasoning Model inner network (docs/model.md#variants), `TRM`'s interface and
    variables plus `H_level`.

    Args:
        vocab_size: V.
        seq_len: S.
        num_puzzle_identifiers: rows of the puzzle embedding table.
        hidden_size: D.
        num_heads: attention heads.
        expansion: SwiGLU expansion.
        H_layers: blocks of the high-level network.
        L_layers: blocks of the low-level network.
        H_cycles: high-level cycles.
        L_cycles: low-level updates per high-level cycle.
        pos_encodings: "rope", "learned" or "none".
        puzzle_emb_ndim: puzzle embedding width (0 disables it).
        puzzle_emb_len: prefix positions; 0 = ceil(puzzle_emb_ndim / D) (HRM's rule, 1 at ndim = D).
        rms_norm_eps: RMSNorm epsilon.
        rope_theta: RoPE base.
        forward_dtype: "float32", "bfloat16" or "float16".
        remat: gradient checkpointing of the two with-gradient network calls.
        seed: initializer seed.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_puzzle_identifiers: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        H_layers: int = 4,
        L_layers: int = 4,
        H_cycles: int = 2,
        L_cycles: int = 2,
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
        kwargs.setdefault("name", "hrm")
        super().__init__(
            vocab_size,
            seq_len,
            num_puzzle_identifiers,
            hidden_size=hidden_size,
            num_heads=num_heads,
            expansion=expansion,
            L_layers=L_layers,
            H_cycles=H_cycles,
            L_cycles=L_cycles,
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
        if H_layers < 1:
            raise ValueError("H_layers must be >= 1")
        self.H_layers = int(H_layers)
        self.H_level = ReasoningModule(
            self.H_layers,
            dict(self.L_level.block_kwargs),
            seed=self.seed * 1000 + 50_000,  # disjoint from every TRM seed
            dtype=self.dtype_policy,
            name="H_level",
        )

    def build_variables(self) -> None:
        """Creates every variable eagerly (both levels). Idempotent."""
        if self.built:
            return
        self.H_level.build(None)
        super().build_variables()

    def _h_net(self, h, injection):
        return self.H_level(h, injection, rotary=self.rotary_emb)

    def _recursion_no_grad(self, z_H, z_L, x):
        last_h, last_l = self.H_cycles - 1, self.L_cycles - 1
        for h in range(self.H_cycles):
            for j in range(self.L_cycles):
                if not (h == last_h and j == last_l):
                    z_L = self._net(z_L, z_H + x)
            if h != last_h:
                z_H = self._h_net(z_H, z_L)
        return z_H, z_L

    def _recursion_grad(self, z_H, z_L, x):
        z_L = self._maybe_remat(self._net)(z_L, z_H + x)
        z_H = self._maybe_remat(self._h_net)(z_H, z_L)
        return z_H, z_L

    def _block_calls(self) -> tuple[int, int]:
        return (
            self.H_cycles * (self.L_cycles * self.L_layers + self.H_layers),
            self.L_layers + self.H_layers,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("mlp_t", None)
        config["H_layers"] = self.H_layers
        return config
