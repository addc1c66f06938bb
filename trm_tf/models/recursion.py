"""Recursion schemes: how one supervision step updates the carried latents.

A recursion is a small stateless object the backbone (`trm_tf/models/backbone.py`) calls as
`recursion(backbone, carry, x, H_cycles, L_cycles) -> (new_carry, y_prev, y)`, where `carry` is a dict
of [B, total_len, D] latents (names in `carry_names`), `x` the input embedding and `y` the state the
heads read (`y_prev`: that state entering the with-gradient part, for the recursion regulariser). The
network calls go through the backbone (`net`, `h_net`, `net_plain`, `maybe_remat`), so a recursion owns
no variables and changes no checkpoint path. The cycle counts are call arguments: a curriculum traces
one step function per depth without touching the model.

Every scheme runs its early updates without gradient: they are run with tape recording stopped (no
activation memory is kept) and their results are stop_gradient'ed (graph-mode gradients are pruned
there too); only the last part is differentiated.

* `TRMRecursion` (arch "trm"): z_L <- net(z_L + (z_H + x)) L times, then z_H <- net(z_H + z_L); H such
  cycles, the first H - 1 without gradient.
* `SingleZRecursion` ("trm_singlez"): one latent z (init `L_init`): z <- net(z + x) L times, then
  z <- net(z) with no injection; H cycles as TRM.
* `Hier6Recursion` ("trm_hier6"): z_H and six latents z_L1 .. z_L6 (inits: the rows of `L_inits`);
  with s = z_L1 + ... + z_L6 summed left to right, z_Lk <- net(s + (z_H + x)) for k = 1 .. L, then
  z_H <- net(z_H + s). Latents past L keep their init. Needs L <= 6.
* `HRMRecursion` ("hrm"): two networks; L z_L updates (L_level) then one z_H update (H_level) per
  cycle, and only the very last z_L and z_H updates carry gradient (1-step gradient).
* `OnePassTransformer` ("transformer", the reference's Model_ACTV2): z_H <- blocks(z_H + x) once, with
  gradient; the cycle counts are ignored.
"""

from __future__ import annotations

import tensorflow as tf

try:  # Pauses every active GradientTape; what tf.custom_gradient itself uses.
    from tensorflow.python.eager.record import stop_recording as _stop_recording
except ImportError:  # pragma: no cover - older/newer TF layouts: stop_gradient alone is still exact
    import contextlib

    _stop_recording = contextlib.nullcontext

HIER_SLOTS = 6  # number of z_L states of trm_hier6 (fixed in the reference)


def without_gradient(fn, *args):
    """fn(*args) unrecorded on every tape, with stop_gradient'ed outputs (a nest of tensors)."""
    with _stop_recording():
        out = fn(*args)
        return tf.nest.map_structure(tf.stop_gradient, out)


def _sum(zs):
    s = zs[0]
    for z in zs[1:]:  # left to right, as the reference (matters for bf16 rounding)
        s = s + z
    return s


class _Cycles:
    """Default cycle counts and their per-call override; shared bookkeeping, no forward logic."""

    arch = ""
    carry_names: tuple[str, ...] = ()
    config_keys = ("H_cycles", "L_cycles")
    defaults: dict = {}  # backbone keyword defaults of this arch
    unsupported: tuple[str, ...] = ("H_layers",)  # backbone switches this arch does not have
    extra_init_rows = 0  # rows of the backbone's `L_inits`

    def __init__(self, H_cycles: int = 3, L_cycles: int = 6):
        self.H_cycles, self.L_cycles = int(H_cycles), int(L_cycles)
        self.resolve_cycles(None)  # validates the defaults

    def resolve_cycles(self, cycles) -> tuple[int, int]:
        """(H, L) of one call: `cycles` or the defaults; validated (trace-time Python ints)."""
        h, l_ = (self.H_cycles, self.L_cycles) if cycles is None else (int(c) for c in cycles)
        if h < 1 or l_ < 1:
            raise ValueError(f"H_cycles and L_cycles must be >= 1, got {(h, l_)}")
        return h, l_

    def check_backbone(self, backbone) -> None:
        """Raises ValueError when the backbone lacks what this recursion needs."""

    def get_config(self) -> dict:
        return {"arch": self.arch, "H_cycles": self.H_cycles, "L_cycles": self.L_cycles}

    def block_calls(self, backbone, h: int, l_: int) -> tuple[int, int]:
        """(block applications per supervision step, of which with gradient)."""
        return h * (l_ + 1) * backbone.L_layers, (l_ + 1) * backbone.L_layers


class _CyclesReadingZH(_Cycles):
    """Recursions whose `_cycle(carry, x, net, l_)` updates a carry dict and whose heads read `z_H`:
    H-1 cycles without gradient, the last one with it (rematerialised when `remat` is set)."""

    def __call__(self, bb, carry, x, h, l_):
        def early(c, x):
            for _ in range(h - 1):
                c = self._cycle(c, x, bb.net, l_)
            return c

        carry = without_gradient(early, carry, tf.stop_gradient(x))
        carry_out = self._cycle(carry, x, bb.maybe_remat(bb.net), l_)
        return carry_out, carry["z_H"], carry_out["z_H"]


class TRMRecursion(_CyclesReadingZH):
    """TRM: latents z_H (init `H_init`) and z_L (init `L_init`); see the module docstring."""

    arch = "trm"
    carry_names = ("z_H", "z_L")

    def init_vectors(self, bb) -> dict:
        return {"z_H": bb.H_init, "z_L": bb.L_init}

    @staticmethod
    def _cycle(c, x, net, l_):
        z_H, z_L = c["z_H"], c["z_L"]
        for _ in range(l_):
            z_L = net(z_L, z_H + x)  # inj = z_H + x first, then z_L + inj (bf16 rounding order)
        return {"z_H": net(z_H, z_L), "z_L": z_L}


class SingleZRecursion(_Cycles):
    """Single-z TRM: one latent `z` (init `L_init`); see the module docstring."""

    arch = "trm_singlez"
    carry_names = ("z",)

    def init_vectors(self, bb) -> dict:
        return {"z": bb.L_init}

    @staticmethod
    def _cycle(z, x, net, net_plain, l_):
        for _ in range(l_):
            z = net(z, x)  # net(z + x)
        return net_plain(z)

    def __call__(self, bb, carry, x, h, l_):
        def early(z, x):
            for _ in range(h - 1):
                z = self._cycle(z, x, bb.net, bb.net_plain, l_)
            return z

        z = without_gradient(early, carry["z"], tf.stop_gradient(x))
        out = self._cycle(z, x, bb.maybe_remat(bb.net), bb.maybe_remat(bb.net_plain), l_)
        return {"z": out}, z, out


class Hier6Recursion(_CyclesReadingZH):
    """Hierarchical TRM with six z_L latents `z_L1` .. `z_L6`; see the module docstring."""

    arch = "trm_hier6"
    carry_names = ("z_H",) + tuple(f"z_L{k + 1}" for k in range(HIER_SLOTS))
    extra_init_rows = HIER_SLOTS

    def resolve_cycles(self, cycles) -> tuple[int, int]:
        h, l_ = super().resolve_cycles(cycles)
        if l_ > HIER_SLOTS:
            raise ValueError(
                f"trm_hier6 has {HIER_SLOTS} z_L states and needs L_cycles <= {HIER_SLOTS}, "
                f"got L_cycles={l_}"
            )
        return h, l_

    def init_vectors(self, bb) -> dict:
        rows = tf.convert_to_tensor(bb.L_inits)
        return {"z_H": bb.H_init, **{k: rows[i] for i, k in enumerate(self.carry_names[1:])}}

    def _cycle(self, c, x, net, l_):
        z_H, zs = c["z_H"], [c[k] for k in self.carry_names[1:]]
        for k in range(l_):
            zs[k] = net(_sum(zs), z_H + x)  # inj = z_H + x first, then s + inj
        return {"z_H": net(z_H, _sum(zs)), **dict(zip(self.carry_names[1:], zs))}


class HRMRecursion(_Cycles):
    """HRM: z_H (H_level) and z_L (L_level), 1-step gradient; see the module docstring.

    The ACT-side differences of HRM (halting when q_halt > q_continue, the bootstrapped q_continue
    target) belong to the ACT wrapper (trm_tf/act.py), not here.
    """

    arch = "hrm"
    carry_names = ("z_H", "z_L")
    defaults = {"L_layers": 4, "H_layers": 4, "puzzle_emb_len": 0}
    unsupported = ("mlp_t", "attention_window")

    def __init__(self, H_cycles: int = 2, L_cycles: int = 2):
        super().__init__(H_cycles, L_cycles)

    def check_backbone(self, backbone) -> None:
        if backbone.H_layers < 1:
            raise ValueError("H_layers must be >= 1")

    def init_vectors(self, bb) -> dict:
        return {"z_H": bb.H_init, "z_L": bb.L_init}

    def __call__(self, bb, carry, x, h, l_):
        def early(c, x):
            z_H, z_L = c["z_H"], c["z_L"]
            for i in range(h):
                for j in range(l_):
                    if not (i == h - 1 and j == l_ - 1):
                        z_L = bb.net(z_L, z_H + x)
                if i != h - 1:
                    z_H = bb.h_net(z_H, z_L)
            return {"z_H": z_H, "z_L": z_L}

        carry = without_gradient(early, carry, tf.stop_gradient(x))
        z_L = bb.maybe_remat(bb.net)(carry["z_L"], carry["z_H"] + x)
        z_H = bb.maybe_remat(bb.h_net)(carry["z_H"], z_L)
        return {"z_H": z_H, "z_L": z_L}, carry["z_H"], z_H

    def block_calls(self, backbone, h: int, l_: int) -> tuple[int, int]:
        n_l, n_h = backbone.L_layers, backbone.H_layers
        return h * (l_ * n_l + n_h), n_l + n_h


class OnePassTransformer(_Cycles):
    """Plain transformer baseline: one pass of `L_layers` blocks over z_H + x, with gradient.

    z_H (init `H_init`) is the only latent. H_cycles / L_cycles are accepted (every config has them,
    and a curriculum passes them) but have no effect. The reference config has 8 blocks, 12 heads and
    a puzzle prefix of ceil(ndim / D) positions (its only rule); it has no MLP-T mixer.
    """

    arch = "transformer"
    carry_names = ("z_H",)
    defaults = {"num_heads": 12, "L_layers": 8, "puzzle_emb_len": 0}
    unsupported = ("H_layers", "attention_window")

    def __init__(self, H_cycles: int = 1, L_cycles: int = 1):
        super().__init__(max(int(H_cycles), 1), max(int(L_cycles), 1))

    def resolve_cycles(self, cycles) -> tuple[int, int]:
        return self.H_cycles, self.L_cycles  # no recursion: the override has nothing to change

    def check_backbone(self, backbone) -> None:
        if backbone.mlp_t:
            raise ValueError(
                "the transformer baseline has no MLP-T token mixer: set model.mlp_t=False"
            )

    def init_vectors(self, bb) -> dict:
        return {"z_H": bb.H_init}

    def __call__(self, bb, carry, x, h, l_):
        del h, l_
        z_H = carry["z_H"]
        out = bb.maybe_remat(bb.net)(z_H, x)
        return {"z_H": out}, z_H, out

    def block_calls(self, backbone, h: int, l_: int) -> tuple[int, int]:
        return backbone.L_layers, backbone.L_layers


RECURSIONS = {
    r.arch: r
    for r in (TRMRecursion, SingleZRecursion, Hier6Recursion, HRMRecursion, OnePassTransformer)
}
