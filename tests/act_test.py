"""The evaluation core's adaptive-halting metrics stop each example by the Q test it was trained with."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.small_models import SMALL, small_trm
from trm_tf import act


def _q_fixed(model, q_halt: float, q_continue: float) -> None:
    """Makes the Q head output (q_halt, q_continue) for every input: zero kernel, that bias."""
    kernel, bias = model.q_head.kernel, model.q_head.bias
    kernel.assign(tf.zeros_like(kernel))
    bias.assign(tf.constant([q_halt, q_continue], bias.dtype))


def _batch(n: int = 4) -> dict:
    rng = np.random.default_rng(0)
    inputs = rng.integers(1, SMALL["vocab_size"], size=(n, SMALL["seq_len"]), dtype=np.int32)
    return {
        "inputs": tf.constant(inputs),
        "labels": tf.constant(inputs),
        "puzzle_identifiers": tf.zeros([n], tf.int32),
        "mask": tf.ones([n], tf.bool),
    }


@pytest.mark.parametrize(
    "halt_rule, q_halt, q_continue, expected_steps",
    [
        ("q_halt", -1.0, -2.0, 3),  # q_halt < 0: TRM's test never passes, every example runs N_sup
        ("q_halt_vs_continue", -1.0, -2.0, 1),  # q_halt > q_continue: HRM's test stops at step 1
        ("q_halt", 1.0, 2.0, 1),  # q_halt > 0 stops TRM at step 1
        ("q_halt_vs_continue", 1.0, 2.0, 3),  # q_halt < q_continue: HRM never stops early
    ],
)
def test_adaptive_steps_follow_the_training_halt_rule(
    halt_rule, q_halt, q_continue, expected_steps
):
    model = small_trm()
    _q_fixed(model, q_halt, q_continue)
    core = act.make_eval_core(
        model,
        halt_max_steps=3,
        loss_type="softmax_cross_entropy",
        jit_compile=False,
        halt_rule=halt_rule,
    )
    out = core(_batch())
    assert float(out["sums"]["adaptive_steps"]) == pytest.approx(4 * expected_steps)
    np.testing.assert_allclose(out["q_halt"].numpy(), q_halt)
    # the reported (final-step) metrics do not depend on the rule: all N_sup steps always run
    assert float(out["sums"]["steps"]) == pytest.approx(4 * 3)


def test_unknown_halt_rule_is_refused():
    with pytest.raises(ValueError, match="halt_rule must be one of"):
        act.make_eval_core(
            small_trm(), halt_max_steps=2, loss_type="softmax_cross_entropy", halt_rule="q_continue"
        )


def test_halt_flags_on_arrays():
    q_halt, q_continue = np.array([-1.0, 0.5, 2.0]), np.array([-2.0, 1.0, 3.0])
    np.testing.assert_array_equal(act.halt_flags(q_halt, q_continue, "q_halt"), [False, True, True])
    np.testing.assert_array_equal(
        act.halt_flags(q_halt, q_continue, "q_halt_vs_continue"), [True, False, False]
    )
    with pytest.raises(ValueError, match="halt_rule must be one of"):
        act.halt_flags(q_halt, q_continue, "sign")
