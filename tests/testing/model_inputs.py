"""Random inputs and random weights for model tests that compare a Keras model with an independent forward
(`reference_numpy`) or with another model built from the same weights."""

from __future__ import annotations

import math

import numpy as np

from trm_tf.models.interop import export_reference_state_dict, load_reference_state_dict


def random_batch(m, b=3, seed=0):
    """(inputs [b, seq_len] int32, puzzle ids [b] int32), uniform over m's vocabulary and puzzle ids."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, m.vocab_size, size=(b, m.seq_len)).astype(np.int32)
    ids = rng.integers(0, m.num_puzzle_identifiers, size=(b,)).astype(np.int32)
    return inputs, ids


def randomise_weights(m, seed=0):
    """Loads random weights into every variable of m, including the q_head weight and the puzzle embedding
    (both start at zero, where a wrong wiring would go unseen), and returns them as a reference-layout
    state dict. The initial states H_init/L_init keep their values."""
    rng = np.random.default_rng(seed)
    sd = export_reference_state_dict(m)
    for k, v in sd.items():
        if k in ("inner.H_init", "inner.L_init"):
            continue
        scale = 0.05 if k.startswith("inner.q_head") else (1.0 if "puzzle_emb" in k else None)
        if scale is None:
            scale = 1.0 / math.sqrt(v.shape[-1]) if v.ndim == 2 else 0.1
            if "embedding_weight" in k:
                scale = 1.0 / math.sqrt(m.hidden_size)
        sd[k] = (rng.normal(size=v.shape) * scale).astype(np.float32)
    load_reference_state_dict(m, sd)
    return sd
