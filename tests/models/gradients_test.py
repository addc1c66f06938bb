"""Gradient structure of the Keras TRM: the 1-step gradient reaches exactly the reference's parameters,
the no-gradient cycles are not recorded on the tape and add no gradient ops, and jit_compile / remat
give the same gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.model_inputs import random_batch, randomise_weights
from tests.testing.small_models import small_trm
from trm_tf.models.interop import load_reference_state_dict


def _loss(out):
    return tf.reduce_sum(tf.square(out["logits"])) + tf.reduce_sum(
        out["q_halt"] * out["q_continue"]
    )


def test_gradient_reaches_exactly_the_spec_set():
    m = small_trm()
    randomise_weights(m, seed=4)
    inputs, ids = random_batch(m)
    carry = m.initial_carry(3)
    z_H = tf.Variable(carry["z_H"])
    z_L = tf.Variable(carry["z_L"])
    with tf.GradientTape(persistent=True) as tape:
        rows = m.gather_puzzle_rows(ids)
        tape.watch(rows)
        out = m.inner({"z_H": z_H, "z_L": z_L}, inputs, rows, training=True)
        loss = _loss(out)
    g_vars = tape.gradient(loss, m.trainable_variables)
    assert all(g is not None for g in g_vars)
    assert all(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in g_vars)
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, rows)))) > 0
    assert tape.gradient(loss, [z_H, z_L]) == [None, None]
    assert tape.gradient(loss, [m.H_init, m.L_init, m.puzzle_emb]) == [None, None, None]
    # The new carry is detached.
    assert tape.gradient(
        tf.reduce_sum(out["carry"]["z_H"]) + tf.reduce_sum(out["carry"]["z_L"]),
        m.trainable_variables,
    ) == [None] * len(m.trainable_variables)


def _grad_graph_op_count(h_cycles):
    m = small_trm(H_cycles=h_cycles)
    inputs, ids = random_batch(m)

    @tf.function
    def grads(z_H, z_L):
        with tf.GradientTape() as tape:
            rows = m.gather_puzzle_rows(ids)
            tape.watch(rows)
            loss = _loss(m.inner({"z_H": z_H, "z_L": z_L}, inputs, rows, training=True))
        return tape.gradient(loss, m.trainable_variables + [rows])

    carry = m.initial_carry(3)
    graph = grads.get_concrete_function(carry["z_H"], carry["z_L"]).graph
    ops = graph.get_operations()
    n_grad = sum(1 for op in ops if op.name.startswith("gradient_tape/"))
    return n_grad, len(ops)


def test_eager_tape_does_not_record_no_grad_cycles():
    """No activation memory for the first T-1 cycles: the tape never records them."""
    m = small_trm(H_cycles=3, L_cycles=2)
    inputs, ids = random_batch(m)
    outs = []
    orig = m.net

    def spy(h, inj):
        y = orig(h, inj)
        outs.append(y)
        return y

    m.net = spy
    with tf.GradientTape(persistent=True) as tape:
        out = m.inner(m.initial_carry(3), inputs, m.gather_puzzle_rows(ids))
    n_ng = (m.H_cycles - 1) * (m.L_cycles + 1)
    assert len(outs) == m.H_cycles * (m.L_cycles + 1)
    for y in outs[:n_ng]:  # not on the tape: no gradient path, hence nothing kept for backward
        assert all(g is None for g in tape.gradient(y, m.trainable_variables))
    grads_last = tape.gradient(outs[-1], m.trainable_variables)
    assert sum(g is not None for g in grads_last) > 0
    assert out["logits"].shape == (3, m.seq_len, m.vocab_size)


@pytest.mark.slow  # traces the full gradient graph
def test_no_grad_cycles_add_no_gradient_ops():
    g1, n1 = _grad_graph_op_count(1)
    g2, n2 = _grad_graph_op_count(2)
    g4, n4 = _grad_graph_op_count(4)
    assert g1 > 0 and g1 == g2 == g4  # backward graph independent of H_cycles
    assert n1 < n2 < n4  # while the forward does grow


def test_first_cycles_do_not_affect_gradient_structure_numerically():
    """Gradients w.r.t. x only flow through the last cycle: d loss / d puzzle row is unchanged when
    the carry entering the last cycle is fixed, whatever ran before it (checked with H_cycles=1 on
    the carry that the first cycle of an H_cycles=2 model produces)."""
    m2 = small_trm(H_cycles=2)
    sd = randomise_weights(m2, seed=5)
    m1 = small_trm(H_cycles=1)
    load_reference_state_dict(m1, sd)
    inputs, ids = random_batch(m2)
    carry = m2.initial_carry(3)
    # The state after one cycle = the H_cycles=1 model's output carry.
    mid = m1.inner(carry, inputs, m1.gather_puzzle_rows(ids))

    def grads(model, c, cycles=None):
        with tf.GradientTape() as tape:
            rows = model.gather_puzzle_rows(ids)
            tape.watch(rows)
            loss = _loss(model.inner(c, inputs, rows, cycles=cycles))
        return tape.gradient(loss, [rows] + model.trainable_variables)

    ga = grads(m2, carry)
    gb = grads(m1, mid["carry"])
    # The same with the depth passed per call instead of a second model.
    gc = grads(m2, mid["carry"], (1, m2.L_cycles))
    for a, c in zip(gb, gc):
        np.testing.assert_array_equal(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(c).numpy()
        )
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), rtol=1e-4, atol=1e-6
        )


@pytest.mark.slow  # XLA-compiles four gradient graphs
def test_jit_compile_and_remat_gradients_equal():
    ma = small_trm(mlp_t=False, pos_encodings="rope")
    sd = randomise_weights(ma, seed=6)
    mb = small_trm(mlp_t=False, pos_encodings="rope", remat=True)
    load_reference_state_dict(mb, sd)
    inputs, ids = random_batch(ma)
    carry = ma.initial_carry(3)
    z_H, z_L = carry["z_H"], carry["z_L"]

    def step(model):
        def f(z_H, z_L):
            with tf.GradientTape() as tape:
                rows = model.gather_puzzle_rows(ids)
                tape.watch(rows)
                out = model.inner({"z_H": z_H, "z_L": z_L}, inputs, rows, training=True)
                loss = _loss(out)
            return loss, tape.gradient(loss, model.trainable_variables + [rows]), out["logits"]

        return f

    la, ga, lga = step(ma)(z_H, z_L)
    lb, gb, _ = step(mb)(z_H, z_L)
    for a, b in zip(ga, gb):
        np.testing.assert_array_equal(
            tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
        )
    lj, gj, lgj = tf.function(step(mb), jit_compile=True)(z_H, z_L)
    np.testing.assert_allclose(lj.numpy(), la.numpy(), rtol=1e-4)
    np.testing.assert_allclose(lgj.numpy(), lga.numpy(), atol=1e-4)
    for a, b in zip(ga, gj):  # XLA fuses and reorders: compare relative to each tensor's scale
        a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * np.abs(a).max())
