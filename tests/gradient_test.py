"""The gradient of one full supervision step against an independent implementation.

The step is `act.make_train_core` (carry reset, forward with its no-gradient early cycles, ACT loss,
backward): its gradients of every trainable variable and of the gathered puzzle-embedding rows are
projected on one random unit direction per variable (and per puzzle row used), and compared with the
central finite difference of the float64 NumPy forward and loss (tests/testing/reference_numpy.py)
along the same direction. The NumPy side never differentiates anything: it re-runs the forward.

Gradient placement (docs/model.md#recursion): the first H - 1 cycles run without gradient, so in the
NumPy loss they are computed once with the unperturbed weights and held fixed; only the last cycle (its
L + 1 network calls, the input embedding and the heads) sees the perturbed weights. A port that
back-propagated through every cycle, or through none of the last cycle's L updates, fails here.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import reference_numpy as rn
from tests.testing.model_inputs import randomise_weights
from tests.testing.small_models import np_cfg, small_trm
from trm_tf import act
from trm_tf.models.interop import reference_variables

B, S, V, P = 3, 6, 7, 4
H_CYCLES, L_CYCLES = 2, 2
# Finite-difference step along a unit direction. The weights are O(0.1..1), so the float64 truncation
# error (~H_FD^2 times the third directional derivative, ~1e-8 relative) and rounding error
# (~1e-16 |loss| / H_FD ~ 1e-12) are both orders of magnitude below the float32 error of the TF side.
H_FD = 1e-4
# The TF gradient is float32 through ~10 chained layers and sums over <= 100 terms: relative errors of
# ~1e-7 .. 1e-6 of the gradient's norm (measured here: at most 1.1e-6, on a puzzle row). A projection
# on a random unit direction can be small by cancellation, so the bound is relative to the gradient's
# norm, not to the projection: |proj_tf - fd| <= 1e-5 ||g_tf||, about 10x the largest measured error,
# while a wrong gradient (one cycle too many or too few, a missing factor 1/B, a transposed kernel)
# moves projections by ~0.1 .. 1 of the norm.
RTOL_OF_NORM = 1e-5


def _model(mixer):
    # The second prefix row of puzzle_emb_len=2 is zero padding.
    return small_trm(
        vocab_size=V,
        seq_len=S,
        num_puzzle_identifiers=P,
        hidden_size=16,
        expansion=2.0,
        H_cycles=H_CYCLES,
        L_cycles=L_CYCLES,
        puzzle_emb_ndim=16,
        puzzle_emb_len=2,
        mlp_t=mixer == "mlp_t",
        pos_encodings="none" if mixer == "mlp_t" else "rope",
    )


def _np_loss_fn(m, sd, z_H, z_L, inputs, ids):
    """Loss of the full step as a function of a reference state dict, float64, gradient placement as
    in the module docstring: the early cycles are fixed at the unperturbed weights."""
    early = rn.inner_forward(sd, np_cfg(m, H_cycles=H_CYCLES - 1), z_H, z_L, inputs, ids)
    z_H, z_L = early["z_H"], early["z_L"]
    last = np_cfg(m, H_cycles=1)

    def loss(sd_, labels):
        out = rn.inner_forward(sd_, last, z_H, z_L, inputs, ids)
        return rn.act_loss(out["logits"], labels, out["q_halt"])[0] / B, out

    return loss


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_full_step_gradient_matches_finite_differences_of_numpy(mixer):
    m = _model(mixer)
    sd = {k: v.astype(np.float64) for k, v in randomise_weights(m, seed=3).items()}
    rng = np.random.default_rng(4)
    shape = (B, m.total_len, m.hidden_size)
    z_H, z_L = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    inputs = rng.integers(0, V, (B, S)).astype(np.int32)
    ids = np.array([1, 3, 1], np.int32)  # row 1 used twice: its gradient sums two slots
    loss_fn = _np_loss_fn(m, sd, z_H, z_L, inputs, ids)
    labels = rng.integers(0, V, (B, S)).astype(np.int32)
    labels[0] = np.argmax(loss_fn(sd, labels)[1]["logits"][0], -1)  # slot 0 right: q target 1
    labels[2, :2] = -100

    carry = dict(z_H=z_H, z_L=z_L, steps=np.ones(B, np.int32), halted=np.zeros(B, bool),
                 inputs=inputs, labels=labels, puzzle_identifiers=ids)  # fmt: skip
    batch = dict(inputs=np.zeros_like(inputs), labels=labels, puzzle_identifiers=ids)
    core = act.make_train_core(
        m, global_batch_size=B, halt_max_steps=16, loss_type="stablemax", jit_compile=False,
        halt_rule="q_halt",
    )  # fmt: skip
    carry = {k: tf.constant(v) for k, v in carry.items()}
    _, grads, row_grads, _ = core(carry, batch, tf.zeros([B], tf.int32), tf.constant(1.0))

    keys = {id(var): (k, t) for k, (var, t) in reference_variables(m).items()}
    checked = []
    for var, g in zip(m.trainable_variables, grads):
        key, transposed = keys[id(var)]
        g = g.numpy().T if transposed else g.numpy()
        checked.append((key, g, None))
    row_grads = row_grads.numpy()
    for pid in sorted(set(ids)):
        checked.append((f"puzzle row {pid}", row_grads[ids == pid].sum(0), pid))
    assert len(checked) == len(m.trainable_variables) + 2
    for name, g, pid in checked:
        u = rng.normal(size=g.shape)
        u /= np.linalg.norm(u)
        key = "inner.puzzle_emb.weights" if pid is not None else name
        step = np.zeros_like(sd[key])
        if pid is None:
            step += H_FD * u
        else:
            step[pid] = H_FD * u
        plus = loss_fn({**sd, key: sd[key] + step}, labels)[0]
        minus = loss_fn({**sd, key: sd[key] - step}, labels)[0]
        fd = (plus - minus) / (2 * H_FD)
        proj = float(np.sum(g * u))
        norm = float(np.linalg.norm(g))
        assert norm > 0, name
        assert abs(proj - fd) <= RTOL_OF_NORM * norm, (name, proj, fd, norm)
