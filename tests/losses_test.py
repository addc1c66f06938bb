"""Tests for trm_tf.losses against the float64 NumPy loss of tests/testing/reference_numpy.py (the
reference formula of docs/model.md#losses, without the float32 rewriting the library uses)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import reference_numpy as rn
from trm_tf import losses
from trm_tf.losses import IGNORE_LABEL_ID

# ----------------------------------------------------------------------------- numpy references


def _np_stablemax_grad(x, y):
    """Analytic float64 gradient of the reference per-token loss w.r.t. the logits."""
    x = np.asarray(x, np.float64)
    s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0)))
    ds = np.where(x >= 0, 1.0, 1 / (1 - np.minimum(x, 0)) ** 2)
    grad = ds / s.sum(-1, keepdims=True)
    onehot = np.eye(x.shape[-1])[y]
    return grad - onehot * ds / s


# ----------------------------------------------------------------------------- stablemax


def _ranges(rng, n, v):
    wide = rng.choice([-1.0, 1.0], (1, n, v)) * 10 ** rng.uniform(-6, 6, (1, n, v))
    return {
        "N(0,3)": rng.normal(0, 3, (1, n, v)),
        "N(0,10)": rng.normal(0, 10, (1, n, v)),
        "U(-1e4,1e4)": rng.uniform(-1e4, 1e4, (1, n, v)),
        "wide ±10^U(-6,6)": wide,
    }


def test_stablemax_matches_float64():
    rng = np.random.default_rng(0)
    n, v = 4000, 11
    report = []
    for name, x in _ranges(rng, n, v).items():
        x = x.astype(np.float32)
        y = rng.integers(0, v, (1, n)).astype(np.int32)
        want = rn.stablemax_ce(x, y)
        got = losses.stablemax_cross_entropy(x, y).numpy()
        abs_err = np.abs(got - want).max()
        rel_err = (np.abs(got - want) / np.abs(want)).max()
        report.append(f"{name}: max|Δ|={abs_err:.2e} max rel={rel_err:.2e}")
        assert abs_err < 1e-5 and rel_err < 1e-5, report[-1]
    # Tiny losses: label logit 1e4, others -1e4 -> loss = log(1 + 10/(1e4+1)/(1e4+1)) ≈ 1e-7.
    x = np.full((1, 8, v), -1e4, np.float32)
    y = rng.integers(0, v, (1, 8)).astype(np.int32)
    np.put_along_axis(x, y[..., None], 1e4, -1)
    want = rn.stablemax_ce(x, y)
    got = losses.stablemax_cross_entropy(x, y).numpy()
    rel = (np.abs(got - want) / want).max()
    report.append(f"tiny loss {want.max():.2e}: max rel={rel:.2e}")
    assert rel < 1e-5
    print("stablemax f32 vs f64:", "; ".join(report))


def test_stablemax_ignore_labels_and_dtype():
    x = np.array([[[1.0, 2.0, -3.0], [0.0, 0.0, 0.0], [5.0, -5.0, 0.5]]], np.float32)
    y = np.array([[1, IGNORE_LABEL_ID, 2]], np.int32)
    got = losses.stablemax_cross_entropy(tf.constant(x, tf.bfloat16), y)
    assert got.dtype == tf.float32 and got.shape == (1, 3)
    assert got.numpy()[0, 1] == 0.0
    x_bf = tf.cast(tf.constant(x, tf.bfloat16), tf.float32).numpy()
    np.testing.assert_allclose(got.numpy(), rn.stablemax_ce(x_bf, y), rtol=1e-6, atol=1e-7)


def test_stablemax_gradients_finite_and_match_float64():
    rng = np.random.default_rng(1)
    v = 7
    x = np.concatenate(
        [
            rng.normal(0, 3, (1, 64, v)),
            rng.uniform(-1e4, 1e4, (1, 32, v)),
            np.zeros((1, 2, v)),  # x = 0 exactly: the x + 1 branch owns it (derivative 1)
            np.full((1, 2, v), -1e30),  # extreme negatives: s underflows in f32 if formed directly
            np.full((1, 2, v), 1e30),
        ],
        axis=1,
    ).astype(np.float32)
    y = rng.integers(0, v, x.shape[:2]).astype(np.int32)
    y[0, 5] = IGNORE_LABEL_ID
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(losses.stablemax_cross_entropy(xt, y))
    grad = tape.gradient(loss, xt).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(grad[0, 5] == 0.0)
    want = _np_stablemax_grad(x, np.where(y == IGNORE_LABEL_ID, 0, y))
    want[0, 5] = 0.0
    scale = np.abs(want).max(-1, keepdims=True) + 1e-30
    assert (np.abs(grad - want) / scale).max() < 1e-5
    # The library's gradient against central finite differences of the float64 reference formula
    # (no analytic derivation involved) on the finite-range tokens: the first 98 (N(0, 3),
    # U(-1e4, 1e4), x = 0). Step h = 1e-6 (1 + |x|): truncation error ~h^2 relative, rounding
    # ~1e-16 / h, both far below the float32 library's own error (a few 1e-7 of the token's largest
    # entry); at x = 0 (where s'' jumps) the central difference is still exact to O(h).
    xs, ys = x[:, :98].astype(np.float64), y[:, :98]
    h = 1e-6 * (1 + np.abs(xs))
    fd = np.zeros_like(xs)
    for c in range(v):
        d = np.zeros_like(xs)
        d[..., c] = h[..., c]
        fd[..., c] = (rn.stablemax_ce(xs + d, ys) - rn.stablemax_ce(xs - d, ys)) / (2 * h[..., c])
    scale = np.abs(fd).max(-1, keepdims=True) + 1e-30
    err = np.abs(grad[:, :98] - fd) / scale
    assert err.max() < 1e-5, err.max()
    assert np.all(fd[0, 5] == 0.0)  # the ignored label has no loss in the formula either


def test_softmax_cross_entropy_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 4, (2, 16, 5)).astype(np.float32)
    y = rng.integers(0, 5, (2, 16)).astype(np.int32)
    y[1, :4] = IGNORE_LABEL_ID
    got = losses.softmax_cross_entropy(x, y).numpy()
    np.testing.assert_allclose(got, rn.softmax_ce(x, y), rtol=1e-5, atol=1e-6)
    assert np.all(got[1, :4] == 0.0)


# ----------------------------------------------------------------------------- ACT loss head


def _hand_batch():
    """B=4, S=3, V=3 with known argmaxes (see the per-row comments)."""
    big, small = 4.0, -2.0

    def row(preds):
        out = np.full((3, 3), small, np.float32)
        out[np.arange(3), preds] = big
        return out

    logits = np.stack(
        [
            row([0, 1, 2]),  # ex0: all 3 labels right
            row([0, 0, 2]),  # ex1: labels [0, -100, 1] -> 1 of 2 right
            row([1, 1, 1]),  # ex2: no valid labels -> "correct" but never valid for metrics
            row([2, 2, 0]),  # ex3: all right, but not halted
        ]
    )
    labels = np.array(
        [[0, 1, 2], [0, IGNORE_LABEL_ID, 1], [IGNORE_LABEL_ID] * 3, [2, 2, 0]], np.int32
    )
    q_halt = np.array([2.0, 1.0, -1.0, -3.0], np.float32)
    q_continue = np.array([0.5, -0.5, 0.0, 1.5], np.float32)
    halted = np.array([True, True, True, False])
    steps = np.array([5, 3, 16, 2], np.int32)
    return logits, labels, q_halt, q_continue, halted, steps


def test_act_loss_and_metrics_hand_computed():
    logits, labels, q_halt, q_cont, halted, steps = _hand_batch()
    loss, m = losses.act_loss_and_metrics(logits, labels, q_halt, q_cont, halted, steps)
    m = {k: float(v) for k, v in m.items()}
    assert set(m) == {
        "count",
        "accuracy",
        "exact_accuracy",
        "q_halt_accuracy",
        "steps",
        "lm_loss",
        "q_halt_loss",
    }
    # valid = ex0, ex1 (ex2 has no labels, ex3 not halted).
    assert m["count"] == 2.0
    assert m["accuracy"] == pytest.approx(1.0 + 0.5)
    assert m["exact_accuracy"] == 1.0
    # ex0: q >= 0 and correct (right); ex1: q >= 0 but wrong (wrong).
    assert m["q_halt_accuracy"] == 1.0
    assert m["steps"] == 8.0

    # The loss against the float64 NumPy loss head; its q_halt target is known by hand here:
    # ex2 has no labels, which counts as correct.
    want, parts = rn.act_loss(logits, labels, q_halt)
    q64 = q_halt.astype(np.float64)
    qh = (np.logaddexp(0.0, q64) - q64 * np.array([1.0, 0.0, 1.0, 1.0])).sum()
    assert parts["q_halt_loss"] == pytest.approx(qh, rel=1e-12)
    assert m["lm_loss"] == pytest.approx(parts["lm_loss"], rel=1e-6)
    assert m["q_halt_loss"] == pytest.approx(qh, rel=1e-6)
    assert float(loss) == pytest.approx(want, rel=1e-6)

    # With a q_continue target the loss gains 0.5 * its BCE sum.
    target = np.array([0.0, 1.0, 0.25, 1.0], np.float32)
    loss2, m2 = losses.act_loss_and_metrics(
        logits, labels, q_halt, q_cont, halted, steps, target_q_continue=target
    )
    want2, parts2 = rn.act_loss(logits, labels, q_halt, q_cont, target)
    assert float(m2["q_continue_loss"]) == pytest.approx(parts2["q_continue_loss"], rel=1e-6)
    assert float(loss2) == pytest.approx(want2, rel=1e-6)

    # Softmax option uses the softmax CE for lm_loss.
    _, m3 = losses.act_loss_and_metrics(
        logits, labels, q_halt, q_cont, halted, steps, loss_type="softmax"
    )
    lm_soft = rn.act_loss(logits, labels, q_halt, loss="softmax")[1]["lm_loss"]
    assert float(m3["lm_loss"]) == pytest.approx(lm_soft, rel=1e-6)
    with pytest.raises(ValueError):
        losses.act_loss_and_metrics(logits, labels, q_halt, q_cont, halted, steps, loss_type="x")


@pytest.mark.parametrize("loss_type", ["stablemax", "softmax"])
def test_act_loss_matches_float64_numpy_on_random_batches(loss_type):
    """Random logits (wide range, some sequences fully right), ignored labels and a q_continue target:
    the library's loss sum equals the float64 NumPy loss head to float32 accuracy."""
    rng = np.random.default_rng(5)
    b, s, v = 16, 12, 6
    logits = rng.normal(0, 4, (b, s, v)).astype(np.float32)
    labels = rng.integers(0, v, (b, s)).astype(np.int32)
    labels[:4] = np.argmax(logits[:4], -1)  # four sequences fully right: their q_halt target is 1
    labels[rng.random((b, s)) < 0.2] = IGNORE_LABEL_ID
    labels[5] = IGNORE_LABEL_ID  # no labels at all
    q_halt, q_cont = (rng.normal(0, 3, b).astype(np.float32) for _ in range(2))
    target = rng.random(b).astype(np.float32)
    halted, steps = rng.random(b) < 0.5, rng.integers(1, 17, b).astype(np.int32)
    loss, m = losses.act_loss_and_metrics(
        logits, labels, q_halt, q_cont, halted, steps, loss_type, target_q_continue=target
    )
    want, parts = rn.act_loss(logits, labels, q_halt, q_cont, target, loss=loss_type)
    assert float(loss) == pytest.approx(want, rel=2e-6)
    for k, w in parts.items():
        assert float(m[k]) == pytest.approx(w, rel=2e-6), k


def test_halt_penalty_zero_is_bit_identical_and_positive_adds_term():
    logits, labels, q_halt, q_cont, halted, steps = _hand_batch()
    args = (logits, labels, q_halt, q_cont, halted, steps)
    base, m = losses.act_loss_and_metrics(*args)
    zero, mz = losses.act_loss_and_metrics(*args, halt_penalty=0.0)
    # Same graph as the reference formula lm + 0.5 * q_halt (no extra term built).
    ref = m["lm_loss"] + 0.5 * m["q_halt_loss"]
    assert base.numpy().tobytes() == zero.numpy().tobytes() == ref.numpy().tobytes()
    assert "halt_penalty_loss" not in mz
    lam = 0.3
    pen, mp = losses.act_loss_and_metrics(*args, halt_penalty=lam)
    expected = lam * (1 - 1 / (1 + np.exp(-q_halt))).sum()
    assert float(mp["halt_penalty_loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(pen) == pytest.approx(float(base) + expected, rel=1e-6)
    # The penalty's gradient pushes every q_halt up (towards halting).
    qh = tf.constant(q_halt)
    with tf.GradientTape() as tape:
        tape.watch(qh)
        g_pen = losses.act_loss_and_metrics(
            logits, labels, qh, q_cont, halted, steps, halt_penalty=lam
        )[0]
        g_base = losses.act_loss_and_metrics(logits, labels, qh, q_cont, halted, steps)[0]
        diff = g_pen - g_base
    assert np.all(tape.gradient(diff, qh).numpy() < 0)


@pytest.mark.parametrize(
    "lam, correct, halts",
    [
        (0.0, 19, False),
        (0.0, 21, True),
        (0.01, 19, False),  # threshold 0.495
        (0.01, 20, True),
        (0.1, 17, False),  # threshold 0.45
        (0.1, 19, True),
        (1.0, 1, True),  # threshold 0: any chance of being right halts
        (1.0, 0, False),
    ],
)
def test_halt_penalty_moves_the_halting_threshold_to_half_minus_half_lambda(lam, correct, halts):
    """With loss = lm + 0.5 * BCE(q_halt, correct) + lam * (1 - sigmoid(q_halt)), the q_halt that
    minimises the loss over examples of which a fraction p is right has sigmoid(q) = the root in
    [0, 1] of 0.5 (s - p) = lam * s (1 - s), and q > 0 (halt) exactly when p > 1/2 - lam/2
    (docs/model.md#losses). Found here by bisection on the library's own gradient."""
    b, s, v = 40, 3, 4
    labels = np.zeros((b, s), np.int32)
    logits = np.zeros((b, s, v), np.float32)
    logits[:, :, 0] = 5.0  # predicts 0 everywhere
    labels[correct:, 0] = 1  # ... so only the first `correct` rows are right
    halted, steps = np.zeros(b, bool), np.ones(b, np.int32)
    q_cont = np.zeros(b, np.float32)

    def grad(q: float) -> float:
        qv = tf.constant(q, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(qv)
            loss = losses.act_loss_and_metrics(
                logits, labels, tf.fill([b], qv), q_cont, halted, steps, halt_penalty=lam
            )[0]
        return float(tape.gradient(loss, qv))

    lo, hi = -12.0, 12.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if grad(mid) < 0 else (lo, mid)
    q = (lo + hi) / 2
    p, sig = correct / b, 1 / (1 + np.exp(-q))
    assert 0.5 * (sig - p) == pytest.approx(lam * sig * (1 - sig), abs=1e-5)
    assert (q > 1e-4) == halts == (p > 0.5 - lam / 2)


def test_fresh_model_q_halt_loss():
    b = 4
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(b, 9, 11)).astype(np.float32)
    labels = np.full((b, 9), 2, np.int32)
    logits[..., 2] = -10.0  # never predicted -> every sequence wrong -> targets 0
    q = np.full(b, -5.0, np.float32)
    _, m = losses.act_loss_and_metrics(
        logits, labels, q, q, np.zeros(b, bool), np.ones(b, np.int32)
    )
    assert float(m["q_halt_loss"]) == pytest.approx(b * math.log1p(math.exp(-5.0)), rel=1e-6)
    assert float(m["q_halt_loss"]) == pytest.approx(0.0067153 * b, rel=1e-4)
    assert float(m["count"]) == 0.0


def test_per_example_outputs():
    logits, labels, q_halt, *_ = _hand_batch()
    ex = losses.per_example_outputs(logits, labels, q_halt)
    assert ex["preds"].dtype == tf.int32 and ex["preds"].shape == (4, 3)
    np.testing.assert_array_equal(ex["preds"].numpy(), [[0, 1, 2], [0, 0, 2], [1, 1, 1], [2, 2, 0]])
    np.testing.assert_array_equal(ex["seq_is_correct"].numpy(), [True, False, True, True])
    np.testing.assert_allclose(ex["token_correct"].numpy(), [1.0, 0.5, 0.0, 1.0])
    assert ex["loss_counts"].dtype == tf.int32
    np.testing.assert_array_equal(ex["loss_counts"].numpy(), [3, 2, 0, 3])
    np.testing.assert_array_equal(ex["q_halt"].numpy(), q_halt)


def test_xla_matches_eager():
    logits, labels, q_halt, q_cont, halted, steps = _hand_batch()

    @tf.function(jit_compile=True)
    def f(lg, lb, qh, qc, h, s):
        return losses.act_loss_and_metrics(lg, lb, qh, qc, h, s)

    loss_x, m_x = f(logits, labels, q_halt, q_cont, halted, steps)
    loss_e, m_e = losses.act_loss_and_metrics(logits, labels, q_halt, q_cont, halted, steps)
    assert float(loss_x) == pytest.approx(float(loss_e), rel=1e-6)
    for k in m_e:
        assert float(m_x[k]) == pytest.approx(float(m_e[k]), rel=1e-6), k


def test_normalize_metrics():
    sums = {
        "count": tf.constant(4.0),
        "accuracy": tf.constant(3.0),
        "lm_loss": tf.constant(8.0),
        "q_halt_loss": tf.constant(2.0),
    }
    tr = {k: float(v) for k, v in losses.normalize_train_metrics(sums, 16).items()}
    assert tr == {"count": 1.0, "accuracy": 0.75, "lm_loss": 0.5, "q_halt_loss": 0.125}
    ev = {k: float(v) for k, v in losses.normalize_eval_metrics(sums).items()}
    assert ev == {"count": 1.0, "accuracy": 0.75, "lm_loss": 2.0, "q_halt_loss": 0.5}
    # count 0 -> divide by 1, no nan.
    z = losses.normalize_eval_metrics({"count": tf.constant(0.0), "accuracy": tf.constant(0.0)})
    assert float(z["accuracy"]) == 0.0
