"""The ACT carry over supervision steps (docs/model.md#act-carry): only halted slots take the loader's
new example and a fresh latent state; every other slot keeps its latents, its step count and its data
(inputs, labels, puzzle id) bit for bit and keeps working on its puzzle.

The carry is driven through `act.make_train_core` (the compiled-off train step the trainer runs), with a
batch whose slots are in every situation at once: halted before the step (reloaded), running (kept),
and running at N_sup - 1 steps (kept now, halted by the max-steps rule after the step, so reloaded at
the next step).
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.small_models import small_trm
from trm_tf import act

B, S, V, P, MAX_STEPS = 4, 6, 9, 5, 3
HALTED_BEFORE = np.array([True, False, True, False])
STEPS_BEFORE = np.array([2, 1, 0, MAX_STEPS - 1], np.int32)  # slot 3 reaches N_sup at this step


@pytest.fixture(scope="module")
def model():
    m = small_trm(
        vocab_size=V,
        seq_len=S,
        num_puzzle_identifiers=P,
        hidden_size=16,
        expansion=2.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=16,
        puzzle_emb_len=1,
        mlp_t=False,
        pos_encodings="rope",
    )
    rng = np.random.default_rng(0)
    m.puzzle_emb.assign(rng.normal(size=m.puzzle_emb.shape).astype(np.float32))
    # q_halt = -5 for every slot (bias -5, weight 0): no slot halts by the Q test, only by N_sup.
    return m


def _carry(model, rng):
    t, d = model.total_len, model.hidden_size
    return {
        "z_H": tf.constant(rng.normal(size=(B, t, d)).astype(np.float32)),
        "z_L": tf.constant(rng.normal(size=(B, t, d)).astype(np.float32)),
        "steps": tf.constant(STEPS_BEFORE),
        "halted": tf.constant(HALTED_BEFORE),
        "inputs": tf.constant(rng.integers(0, V, (B, S)).astype(np.int32)),
        "labels": tf.constant(rng.integers(0, V, (B, S)).astype(np.int32)),
        "puzzle_identifiers": tf.constant(np.array([1, 2, 3, 4], np.int32)),
    }


def _batch(rng, first_id):
    return {
        "inputs": tf.constant(rng.integers(0, V, (B, S)).astype(np.int32)),
        "labels": tf.constant(rng.integers(0, V, (B, S)).astype(np.int32)),
        "puzzle_identifiers": tf.constant(np.full([B], first_id, np.int32)),
    }


def _core(model):
    return act.make_train_core(
        model, global_batch_size=B, halt_max_steps=MAX_STEPS, loss_type="stablemax",
        jit_compile=False, halt_rule="q_halt",
    )  # fmt: skip


def _np(d):
    return {k: v.numpy() for k, v in d.items()}


DATA = ("inputs", "labels", "puzzle_identifiers")


def test_begin_step_reloads_exactly_the_halted_slots(model):
    rng = np.random.default_rng(1)
    carry, batch = _carry(model, rng), _batch(rng, 0)
    cur = _np(act.begin_step(model, carry, batch))
    old, new, fresh = _np(carry), _np(batch), _np(model.initial_carry(B))
    for i in range(B):
        src = new if HALTED_BEFORE[i] else old
        for k in DATA:
            np.testing.assert_array_equal(cur[k][i], src[k][i], err_msg=f"slot {i} {k}")
        for k in ("z_H", "z_L"):
            want = fresh[k][i] if HALTED_BEFORE[i] else old[k][i]
            np.testing.assert_array_equal(cur[k][i], want, err_msg=f"slot {i} {k}")
        assert cur["steps"][i] == (0 if HALTED_BEFORE[i] else STEPS_BEFORE[i]), i


def test_two_supervision_steps_keep_running_slots_and_reload_halted_ones(model):
    rng = np.random.default_rng(2)
    carry, batch1, batch2 = _carry(model, rng), _batch(rng, 0), _batch(rng, 0)
    core = _core(model)
    old = _np(carry)
    c1 = _np(core(carry, batch1, tf.zeros([B], tf.int32), tf.constant(1.0))[0])
    # After step 1: reloaded slots hold batch 1's data at step 1, kept slots their own data one step on.
    for i in range(B):
        src = _np(batch1) if HALTED_BEFORE[i] else old
        for k in DATA:
            np.testing.assert_array_equal(c1[k][i], src[k][i], err_msg=f"slot {i} {k}")
    np.testing.assert_array_equal(c1["steps"], np.where(HALTED_BEFORE, 1, STEPS_BEFORE + 1))
    # Nothing halts by the Q test (q_halt = -5); slot 3 halts at N_sup.
    np.testing.assert_array_equal(c1["halted"], [False, False, False, True])
    # The latents advanced from the right starting state: a kept slot from its own carry, a reloaded
    # slot from the fresh state (one forward of each slot on its own, compared with the batched step).
    fresh = _np(model.initial_carry(B))
    for i in range(B):
        start = {k: (fresh if HALTED_BEFORE[i] else old)[k][i : i + 1] for k in ("z_H", "z_L")}
        ids = c1["puzzle_identifiers"][i : i + 1]
        out = model.inner(start, c1["inputs"][i : i + 1], model.gather_puzzle_rows(ids))
        for k in ("z_H", "z_L"):
            np.testing.assert_allclose(
                c1[k][i], out["carry"][k].numpy()[0], rtol=1e-5, atol=1e-6, err_msg=f"{i} {k}"
            )
    # Step 2: only slot 3 (halted at N_sup) takes batch 2; the others keep step 1's carry bit for bit.
    c1_t = {k: tf.constant(v) for k, v in c1.items()}
    cur2 = _np(act.begin_step(model, c1_t, batch2))
    for i in range(B):
        for k in DATA + ("z_H", "z_L"):
            src = (_np(batch2) if k in DATA else fresh) if i == 3 else c1
            np.testing.assert_array_equal(cur2[k][i], src[k][i], err_msg=f"step 2 slot {i} {k}")
    np.testing.assert_array_equal(cur2["steps"], [1, 2, 1, 0])
