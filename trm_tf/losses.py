"""Losses and metric sums of the TRM ACT loss head (docs/model.md#losses), in float32 and
XLA/TPU-safe.

Everything here is a pure function of tensors with static shapes: no float64 (TPUs have none), no
data-dependent shapes, no Python control flow on tensor values. The caller casts bf16 logits to float32
before calling (the reference casts to float64; see `stablemax_cross_entropy` for why float32 suffices).

Conventions (reference `models/losses.py`, `ACTLossHead`):
  * labels equal to `IGNORE_LABEL_ID` (-100) contribute nothing;
  * `loss_sum` is summed over the local batch; the trainer divides it by the GLOBAL batch size
    (docs/model.md#losses), so the replica sum of gradients equals the gradient of the global batch
    mean;
  * metric values are float32 SUMS; normalise them with `normalize_train_metrics` /
    `normalize_eval_metrics` after summing over replicas / batches.

Compute-aware halting (not in the reference): with `halt_penalty` = λ > 0 the loss gains
λ · Σ_b (1 − sigmoid(q_halt_b)), the expected "continue" probability of each slot, i.e. an
expected-extra-compute cost whose gradient pushes q_halt up (halting earlier). With λ == 0 (the default)
the term is not even built, so the loss is bit-identical to the reference formula.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

IGNORE_LABEL_ID = -100

# Finite stand-in for -inf when masking the label class out of a max: keeps every tf.where branch finite.
_NEG_BIG = -1e30


def _log_stablemax_s(x: tf.Tensor) -> tf.Tensor:
    """log s(x) with s(x) = x + 1 (x >= 0) and 1 / (1 - x) (x < 0), never forming s itself.

    log s(x) = log1p(x) for x >= 0 and -log1p(-x) for x < 0. Each branch is evaluated on a clamped
    argument (>= 0), so both branches of the `tf.where` are finite with finite gradients for every x;
    the derivative is 1 / (1 + |x|) on both sides (1 at x = 0, via the x >= 0 branch, as in the
    reference whose x + 1 branch owns x = 0).
    """
    pos = tf.math.log1p(tf.maximum(x, 0.0))
    neg = -tf.math.log1p(tf.maximum(-x, 0.0))
    return tf.where(x >= 0.0, pos, neg)


def _safe_labels(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns (mask of valid labels, labels with ignored entries replaced by 0)."""
    labels = tf.cast(labels, tf.int32)
    mask = tf.not_equal(labels, IGNORE_LABEL_ID)
    return mask, tf.where(mask, labels, tf.zeros_like(labels))


def stablemax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-token stablemax cross-entropy in float32, equivalent to the reference's float64 version.

    Reference (docs/model.md#losses), in float64: s(x) = x + 1 for x >= 0 and 1 / (1 - x + 1e-30)
    for x < 0; loss = -log(s(x_y) / Σ_c s(x_c)), and 0 where the label is -100.

    Float32 formulation. With ls_c = log s(x_c) computed as log1p(x) / -log1p(-x) (no tiny reciprocal
    is ever formed, so nothing underflows; the reference's +1e-30 is below float64 resolution next to
    1 - x >= 1 and therefore changes nothing), the loss is rewritten exactly as

        loss = log(Σ_c s_c / s_y) = log(1 + Σ_{c≠y} s_c / s_y) = softplus(A - ls_y),
        A    = log Σ_{c≠y} s_c = m + log Σ_{c≠y} exp(ls_c - m),   m = max_{c≠y} ls_c.

    Why this is accurate in float32:
      * |ls_c| <= log1p(3.4e38) ≈ 88.7, so exp(ls_c - m) never overflows, and the sum over c ≠ y
        contains exp(0) = 1, so it never underflows and its log is finite (no inf/nan gradient);
      * softplus(z) is evaluated stably for every z, so there is no cancellation between two large
        logs when the loss is tiny (the naive log Σ s - log s_y loses ~|log s|·eps absolute), and no
        overflow of the normaliser Σ s for huge logits;
      * every step has relative error of a few float32 ulps, so the loss has relative error of a
        few 1e-7 (up to ~2e-6 for losses ~1e-6, where softplus amplifies its argument's rounding).

    Measured against a float64 numpy implementation of the reference formula on the same float32
    inputs (V = 11, 20k tokens per range, one-off script; re-measured on 4k tokens and asserted
    < 1e-5 by `tests/losses_test.py::test_stablemax_matches_float64`, which prints its figures):
      * logits ~ N(0, 3)   (losses 0.5..5.8):    max |Δ| 1.1e-6, max relative 2.7e-7;
      * logits ~ N(0, 10)  (losses 0.04..8.1):   max |Δ| 1.3e-6, max relative 4.7e-7;
      * logits ~ U(-1e4, 1e4) (losses 4e-7..20): max |Δ| 3.6e-6, max relative 1.4e-6;
      * logits ~ ±10^U(-6, 6) (losses 7e-6..28): max |Δ| 3.5e-6, max relative 2.3e-6;
      * tiny losses (label logit 1e4, others -1e4, loss 1e-7): relative 1.6e-8, where the naive
        float32 form log Σ s - log s_y returns 0 (relative error 1).
    Gradients (d log s / dx = 1/(1 + |x|) on both branches) are finite for all inputs, including
    x = 0 and ±1e30, and match the float64 analytic gradient of the reference formula to 3e-7
    (N(0, 3)) / 1.7e-6 (U(-1e4, 1e4)) relative to the largest gradient entry of each token.

    Args:
      logits: float [B, S, V] (cast to float32).
      labels: int [B, S]; IGNORE_LABEL_ID marks positions without a target.

    Returns:
      float32 [B, S] per-token losses, exactly 0 where the label is ignored.
    """
    logits = tf.cast(logits, tf.float32)
    mask, safe = _safe_labels(labels)
    onehot = tf.one_hot(safe, tf.shape(logits)[-1], on_value=True, off_value=False, dtype=tf.bool)

    ls = _log_stablemax_s(logits)
    ls_y = tf.reduce_sum(tf.where(onehot, ls, 0.0), axis=-1)
    others = tf.where(onehot, tf.cast(_NEG_BIG, ls.dtype), ls)
    # The shift m cancels mathematically; stopping its gradient is the usual logsumexp trick.
    m = tf.stop_gradient(tf.reduce_max(others, axis=-1, keepdims=True))
    sum_others = tf.reduce_sum(tf.where(onehot, 0.0, tf.exp(others - m)), axis=-1)
    log_others = tf.squeeze(m, -1) + tf.math.log(sum_others)
    loss = tf.nn.softplus(log_others - ls_y)
    return tf.where(mask, loss, tf.zeros_like(loss))


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-token softmax cross-entropy in float32, 0 where the label is -100.

    The reference defines this (F.cross_entropy, fp32, ignore_index=-100) but its loss head calls it
    with an unsupported `valid_mask=` keyword and crashes (docs/model.md#losses), so the reference
    can only train with stablemax. It is provided here as an explicit, non-default option.

    Args:
      logits: float [B, S, V] (cast to float32).
      labels: int [B, S].

    Returns:
      float32 [B, S].
    """
    logits = tf.cast(logits, tf.float32)
    mask, safe = _safe_labels(labels)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    return tf.where(mask, loss, tf.zeros_like(loss))


_LOSS_FNS = {
    "stablemax": stablemax_cross_entropy,
    "stablemax_cross_entropy": stablemax_cross_entropy,
    "softmax": softmax_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}


def per_example_outputs(logits: tf.Tensor, labels: tf.Tensor, q_halt: tf.Tensor) -> dict:
    """Per-example prediction summaries (no gradient), as the reference's loss head computes them.

    Args:
      logits: float [B, S, V].
      labels: int [B, S] with IGNORE_LABEL_ID for ignored positions.
      q_halt: float [B] halting logits.

    Returns:
      dict with
        preds: int32 [B, S], argmax over all V classes (ties -> lowest index on CPU/XLA, like torch);
        seq_is_correct: bool [B], all valid positions correct (True when there are none);
        token_correct: float32 [B], correct valid tokens / max(valid tokens, 1);
        loss_counts: int32 [B], number of valid positions;
        q_halt: float32 [B], passed through (the ARC evaluator ranks by sigmoid(q_halt)).
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32))
    mask, _ = _safe_labels(labels)
    preds = tf.argmax(logits, axis=-1, output_type=tf.int32)
    is_correct = tf.logical_and(mask, tf.equal(preds, tf.cast(labels, tf.int32)))
    loss_counts = tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1)
    n_correct = tf.reduce_sum(tf.cast(is_correct, tf.int32), axis=-1)
    divisor = tf.cast(tf.maximum(loss_counts, 1), tf.float32)
    return {
        "preds": preds,
        "seq_is_correct": tf.equal(n_correct, loss_counts),
        "token_correct": tf.cast(n_correct, tf.float32) / divisor,
        "loss_counts": loss_counts,
        "q_halt": tf.stop_gradient(tf.cast(q_halt, tf.float32)),
    }


def act_loss_and_metrics(
    logits: tf.Tensor,
    labels: tf.Tensor,
    q_halt: tf.Tensor,
    q_continue: tf.Tensor,
    halted: tf.Tensor,
    steps: tf.Tensor,
    loss_type: str = "stablemax",
    target_q_continue: tf.Tensor | None = None,
    halt_penalty: float = 0.0,
) -> tuple[tf.Tensor, dict]:
    """The ACT loss head for one supervision step (docs/model.md#losses), summed over the local
    batch.

    loss_sum = lm_loss + 0.5 · (q_halt_loss + q_continue_loss) [+ halt_penalty term], where
      lm_loss         = Σ_b Σ_s CE_bs / max(loss_counts_b, 1)   (per-sequence mean, summed);
      q_halt_loss     = Σ_b BCEWithLogits(q_halt_b, seq_is_correct_b)   (target detached);
      q_continue_loss = Σ_b BCEWithLogits(q_continue_b, target_q_continue_b), only if a target is
                        given (TRM never provides one; `q_continue` is otherwise unused).
    Every slot contributes to the loss, halted or not (the caller divides by the GLOBAL batch). The
    metrics are `_halted_metric_sums` plus the batch sums lm_loss, q_halt_loss (q_continue_loss when
    a target is given, halt_penalty_loss when λ != 0); the halt penalty is in the module docstring.

    Args:
      logits: float [B, S, V] (cast to float32).
      labels: int [B, S].
      q_halt: float [B] halting logits.
      q_continue: float [B] continue logits.
      halted: bool [B], the halted flag AFTER this supervision step.
      steps: int [B], the step count AFTER this supervision step.
      loss_type: "stablemax" (reference) or "softmax" (also accepts the "_cross_entropy" names).
      target_q_continue: optional float [B] target for q_continue.
      halt_penalty: λ ≥ 0 (Python float or scalar tensor).

    Returns:
      (loss_sum float32 scalar, metrics dict of float32 scalar sums).
    """
    if loss_type not in _LOSS_FNS:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {sorted(_LOSS_FNS)}")
    logits = tf.cast(logits, tf.float32)
    q_halt = tf.cast(q_halt, tf.float32)
    labels = tf.cast(labels, tf.int32)

    ex = per_example_outputs(logits, labels, q_halt)
    divisor = tf.cast(tf.maximum(ex["loss_counts"], 1), tf.float32)
    per_token = _LOSS_FNS[loss_type](logits, labels)
    lm_loss = tf.reduce_sum(tf.reduce_sum(per_token, axis=-1) / divisor)
    q_halt_loss = _bce_sum(tf.cast(ex["seq_is_correct"], tf.float32), q_halt)
    metrics = _halted_metric_sums(ex, halted, q_halt, steps)
    metrics["lm_loss"] = tf.stop_gradient(lm_loss)
    metrics["q_halt_loss"] = tf.stop_gradient(q_halt_loss)

    q_total = q_halt_loss
    if target_q_continue is not None:
        q_continue_loss = _bce_sum(
            tf.stop_gradient(tf.cast(target_q_continue, tf.float32)),
            tf.cast(q_continue, tf.float32),
        )
        metrics["q_continue_loss"] = tf.stop_gradient(q_continue_loss)
        q_total = q_halt_loss + q_continue_loss

    loss_sum = lm_loss + 0.5 * q_total

    if not (isinstance(halt_penalty, (int, float)) and halt_penalty == 0):
        penalty = tf.cast(halt_penalty, tf.float32) * tf.reduce_sum(1.0 - tf.sigmoid(q_halt))
        metrics["halt_penalty_loss"] = tf.stop_gradient(penalty)
        loss_sum = loss_sum + penalty

    return loss_sum, metrics


def _bce_sum(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Σ_b BCEWithLogits(logits_b, labels_b), float32."""
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def _halted_metric_sums(ex: dict, halted, q_halt: tf.Tensor, steps) -> dict:
    """Metric sums (float32 scalars) over valid = halted & (loss_counts > 0), i.e. the slots that finish
    at this step and have at least one label: count, accuracy (Σ correct/divisor), exact_accuracy,
    q_halt_accuracy ((q_halt >= 0) == seq_is_correct) and steps."""
    seq_is_correct = ex["seq_is_correct"]
    validf = tf.cast(tf.logical_and(tf.cast(halted, tf.bool), ex["loss_counts"] > 0), tf.float32)
    q_halt_right = tf.equal(q_halt >= 0.0, seq_is_correct)
    return {
        "count": tf.reduce_sum(validf),
        "accuracy": tf.reduce_sum(validf * ex["token_correct"]),
        "exact_accuracy": tf.reduce_sum(validf * tf.cast(seq_is_correct, tf.float32)),
        "q_halt_accuracy": tf.reduce_sum(validf * tf.cast(q_halt_right, tf.float32)),
        "steps": tf.reduce_sum(validf * tf.cast(steps, tf.float32)),
    }


def normalize_train_metrics(sums: dict, global_batch: int) -> dict:
    """Training-log normalisation (reference pretrain.py): "*loss" keys / global batch, others / count.

    Host maths in NumPy float32 (the same IEEE float32 casts and divisions as the graph ops would do, so
    the same values): the logs are normalised on the client, where an eager TF op would run on the
    default device (after `connect_to_cluster`, a remote host) and cost a fetch per value.

    Args:
      sums: metric sums (summed over replicas; floats, NumPy or eager scalars), must contain "count".
      global_batch: the global batch size.

    Returns:
      dict of np.float32 scalars (`count` itself becomes count / max(count, 1)).
    """
    count = np.maximum(np.float32(sums["count"]), np.float32(1.0))
    gb = np.float32(global_batch)
    return {k: np.float32(v) / (gb if k.endswith("loss") else count) for k, v in sums.items()}


def normalize_eval_metrics(sums: dict) -> dict:
    """Evaluation normalisation (reference evaluate()): every key, losses included, / max(count, 1)."""
    count = tf.maximum(tf.cast(sums["count"], tf.float32), 1.0)
    return {k: tf.cast(v, tf.float32) / count for k, v in sums.items()}
