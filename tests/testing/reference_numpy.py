"""Independent NumPy float64 forward of one TRM supervision step and its ACT loss, written from
docs/model.md#input-embedding to #recursion and #losses.

It shares no code with `trm_tf.models`: it reads weights from a reference-layout state dict (torch
[out, in] Linear weights, keys `inner.…`) such as `export_reference_state_dict` returns, and
re-derives every step of docs/model.md (embedding, RoPE, attention, SwiGLU, MLP-T with the
sequence-axis RMSNorm, recursion, heads) and the loss head (stablemax cross-entropy as the
reference writes it, in float64, without the float32 rewriting `trm_tf.losses` uses). Used by the
parity and gradient tests only.
"""

from __future__ import annotations

import math

import numpy as np


def _rms(x, axis=-1, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=axis, keepdims=True) + eps)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _linear(x, w):
    """torch F.linear without bias: x @ w.T with w [out, in]."""
    return x @ w.T


def _swiglu(x, w_gate_up, w_down):
    gu = _linear(x, w_gate_up)
    gate, up = np.split(gu, 2, axis=-1)  # gate first, up second (docs/model.md#swiglu)
    return _linear(_silu(gate) * up, w_down)


def _rope_tables(head_dim, n_pos, theta):
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    freqs = np.outer(np.arange(n_pos, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _attention(h, w_qkv, w_o, num_heads, cos_sin):
    b, t, d = h.shape
    hd = d // num_heads
    qkv = _linear(h, w_qkv).reshape(b, t, 3 * num_heads, hd)
    q, k, v = (
        qkv[:, :, :num_heads],
        qkv[:, :, num_heads : 2 * num_heads],
        qkv[:, :, 2 * num_heads :],
    )
    if cos_sin is not None:
        cos, sin = cos_sin
        cos, sin = cos[:t, None, :], sin[:t, None, :]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, t, d)
    return _linear(o, w_o)


def _block(h, sd, i, cfg, cos_sin, level="L_level"):
    p = f"inner.{level}.layers.{i}."
    eps = cfg["rms_norm_eps"]
    if cfg["mlp_t"]:
        ht = np.transpose(h, (0, 2, 1))  # [B, D, T]
        ht = _rms(
            ht + _swiglu(ht, sd[p + "mlp_t.gate_up_proj.weight"], sd[p + "mlp_t.down_proj.weight"]),
            axis=-1,  # the sequence axis, before transposing back (docs/model.md#block)
            eps=eps,
        )
        h = np.transpose(ht, (0, 2, 1))
    else:
        a = _attention(
            h,
            sd[p + "self_attn.qkv_proj.weight"],
            sd[p + "self_attn.o_proj.weight"],
            cfg["num_heads"],
            cos_sin,
        )
        h = _rms(h + a, eps=eps)
    m = _swiglu(h, sd[p + "mlp.gate_up_proj.weight"], sd[p + "mlp.down_proj.weight"])
    return _rms(h + m, eps=eps)


def _net(h, inj, sd, cfg, cos_sin, level="L_level"):
    h = h + inj
    n_layers = cfg["H_layers"] if level == "H_level" else cfg["L_layers"]
    for i in range(n_layers):
        h = _block(h, sd, i, cfg, cos_sin, level)
    return h


def input_embeddings(sd, cfg, inputs, puzzle_identifiers):
    """docs/model.md#input-embedding in float64: [B, S + P, D]."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    d = cfg["hidden_size"]
    p_len = cfg["puzzle_emb_len"]
    x = sd["inner.embed_tokens.embedding_weight"][inputs]
    if cfg["puzzle_emb_ndim"] > 0:
        rows = sd["inner.puzzle_emb.weights"][puzzle_identifiers]
        pad = p_len * d - rows.shape[-1]
        rows = np.pad(rows, [(0, 0), (0, pad)])
        x = np.concatenate([rows.reshape(-1, p_len, d), x], axis=1)
    if cfg["pos_encodings"] == "learned":
        x = 0.707106781 * (x + sd["inner.embed_pos.embedding_weight"][None])
    return math.sqrt(d) * x


def inner_forward(sd, cfg, z_H, z_L, inputs, puzzle_identifiers):
    """One supervision step (docs/model.md#recursion) in float64.

    Args:
        sd: reference-layout state dict.
        cfg: dict with hidden_size, num_heads, L_layers, H_cycles, L_cycles, mlp_t, pos_encodings,
            puzzle_emb_ndim, puzzle_emb_len, rms_norm_eps, rope_theta; for HRM also arch="hrm"
            and H_layers.
        z_H, z_L: carry [B, S + P, D].
        inputs: int [B, S].
        puzzle_identifiers: int [B].

    Returns:
        dict with x, z_H, z_L, logits [B, S, V], q_halt [B], q_continue [B].
    """
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    x = input_embeddings(sd, cfg, inputs, puzzle_identifiers)
    t = x.shape[1]
    cos_sin = None
    if cfg["pos_encodings"] == "rope":
        cos_sin = _rope_tables(cfg["hidden_size"] // cfg["num_heads"], t, cfg["rope_theta"])
    z_H = np.asarray(z_H, np.float64)
    z_L = np.asarray(z_L, np.float64)
    if cfg.get("arch", "trm") == "hrm":
        # HRM (docs/model.md#variants): separate H_level; H_cycles * L_cycles z_L updates, one z_H
        # update per H cycle (gradient placement does not change forward values).
        for _ in range(cfg["H_cycles"]):
            for _ in range(cfg["L_cycles"]):
                z_L = _net(z_L, z_H + x, sd, cfg, cos_sin)
            z_H = _net(z_H, z_L, sd, cfg, cos_sin, "H_level")
    else:
        for _ in range(cfg["H_cycles"]):
            for _ in range(cfg["L_cycles"]):
                z_L = _net(z_L, z_H + x, sd, cfg, cos_sin)
            z_H = _net(z_H, z_L, sd, cfg, cos_sin)
    logits = _linear(z_H, sd["inner.lm_head.weight"])[:, cfg["puzzle_emb_len"] :]
    q = _linear(z_H[:, 0], sd["inner.q_head.weight"]) + sd["inner.q_head.bias"]
    return {
        "x": x,
        "z_H": z_H,
        "z_L": z_L,
        "logits": logits,
        "q_halt": q[:, 0],
        "q_continue": q[:, 1],
    }


IGNORE_LABEL_ID = -100


def stablemax_ce(x, y):
    """Per-token stablemax cross-entropy, the reference formula in float64: with
    s(x) = x + 1 (x >= 0) | 1 / (1 - x + 1e-30) (x < 0), -log(s(x_y) / sum_c s(x_c)); 0 where y == -100."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    mask = y != IGNORE_LABEL_ID
    safe = np.where(mask, y, 0)
    s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0) + 1e-30))
    logp = np.log(s / s.sum(-1, keepdims=True))
    return np.where(mask, -np.take_along_axis(logp, safe[..., None], -1)[..., 0], 0.0)


def softmax_ce(x, y):
    """Per-token softmax cross-entropy in float64; 0 where y == -100."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    mask = y != IGNORE_LABEL_ID
    safe = np.where(mask, y, 0)
    top = x.max(-1)
    lse = np.log(np.exp(x - top[..., None]).sum(-1)) + top
    return np.where(mask, lse - np.take_along_axis(x, safe[..., None], -1)[..., 0], 0.0)


def _bce_with_logits(z, t):
    """Binary cross-entropy with logits, log(1 + e^z) - t z, summed."""
    z = np.asarray(z, np.float64)
    return float(np.sum(np.logaddexp(0.0, z) - t * z))


def act_loss(logits, labels, q_halt, q_continue=None, target_q_continue=None, loss="stablemax"):
    """The ACT loss head summed over the batch (docs/model.md#losses), in float64:
    sum_b mean_s CE + 0.5 (BCE(q_halt, all tokens right) [+ BCE(q_continue, target)]).

    The per-sequence mean divides by max(number of labelled tokens, 1); "all tokens right" compares
    the argmax with the label on labelled tokens (True when there are none). Returns (loss, parts)
    with parts = {"lm_loss", "q_halt_loss"[, "q_continue_loss"]}.
    """
    labels = np.asarray(labels)
    ce = (stablemax_ce if loss == "stablemax" else softmax_ce)(logits, labels)
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    lm = float((ce.sum(-1) / np.maximum(counts, 1)).sum())
    right = (np.argmax(logits, -1) == labels) & mask
    seq_correct = (right.sum(-1) == counts).astype(np.float64)
    parts = {"lm_loss": lm, "q_halt_loss": _bce_with_logits(q_halt, seq_correct)}
    q = parts["q_halt_loss"]
    if target_q_continue is not None:
        parts["q_continue_loss"] = _bce_with_logits(q_continue, target_q_continue)
        q += parts["q_continue_loss"]
    return lm + 0.5 * q, parts
