"""The small TRM / HRM models the model tests build (a few thousand parameters, fast on CPU)."""

import functools

from trm_tf.models.backbone import ReasoningBackbone

TRM = functools.partial(ReasoningBackbone.create, "trm")
HRM = functools.partial(ReasoningBackbone.create, "hrm")

SMALL = dict(
    vocab_size=7,
    seq_len=9,
    num_puzzle_identifiers=5,
    hidden_size=32,
    num_heads=2,
    expansion=4.0,
    L_layers=2,
    H_cycles=2,
    L_cycles=2,
    puzzle_emb_ndim=32,
    puzzle_emb_len=3,
)


def small_trm(**over):
    cfg = dict(SMALL)
    cfg.update(over)
    m = TRM(**cfg)
    m.build_variables()
    return m


def np_cfg(m, cycles: bool = True, **extra):
    """The NumPy reference's settings of model `m` (with its cycle counts unless `cycles=False`) and
    `extra`."""
    cfg = dict(
        hidden_size=m.hidden_size,
        num_heads=m.num_heads,
        L_layers=m.L_layers,
        mlp_t=m.mlp_t,
        pos_encodings=m.pos_encodings,
        puzzle_emb_ndim=m.puzzle_emb_ndim,
        puzzle_emb_len=m.puzzle_emb_len,
        rms_norm_eps=m.rms_norm_eps,
        rope_theta=m.rope_theta,
    )
    if cycles:
        cfg.update(H_cycles=m.H_cycles, L_cycles=m.L_cycles)
    return {**cfg, **extra}
