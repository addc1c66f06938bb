"""ACT deep supervision: the carried batch, one supervision step, and the compiled forward/backward.

Reference semantics (docs/model.md#act-carry): every optimizer step is ONE supervision step on a carried batch of slots.
A slot that halted at the previous step takes the loader's new example (and a fresh latent state); every other
slot ignores the new example and keeps working on its puzzle with its carried latents. After the step,
a slot halts when it reached N_sup steps or, in training, when its Q test passes (q_halt > 0 for TRM,
q_halt > q_continue for HRM and the transformer baseline: `halting`), unless the exploration draw gave it a
larger minimum step count. Evaluation runs all N_sup steps from a fresh carry and reports the last one.

The carry lives in per-replica (`SyncOnRead`) variables, so it survives across steps and across the compiled
inner loop without host round trips, and each replica owns its slots. The random draws of the exploration
rule are made for the whole global batch from a stateless seed (seed, step) and sliced per replica, so a run
gives the same result on 1 or N replicas.
"""

from __future__ import annotations

import tensorflow as tf

from trm_tf import losses


def exploration_draws(seed: int, step, global_batch: int, prob: float, max_steps: int):
    """min_halt per global slot: 0 w.p. 1-prob, else uniform in [2, max_steps] (docs/model.md#halting)."""
    s = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    u = tf.random.stateless_uniform([global_batch], seed=s)
    k = tf.random.stateless_uniform(
        [global_batch],
        seed=s + tf.constant([0, 1 << 40], tf.int64),
        minval=2,
        maxval=max_steps + 1,
        dtype=tf.int32,
    )
    return tf.where(u < prob, k, tf.zeros_like(k))


def exploration_prob_at(step, total_steps: int, start: float, final: float):
    """Exploration probability at a step: constant `start` (reference) or annealed linearly to `final`
    over training (adaptive halting exploration, contrib02)."""
    progress = tf.minimum(tf.cast(step, tf.float32) / float(max(total_steps, 1)), 1.0)
    return start + (final - start) * progress


def replica_slice(x, per_replica: int):
    """This replica's slots of a global-batch tensor."""
    ctx = tf.distribute.get_replica_context()
    rid = ctx.replica_id_in_sync_group if ctx is not None else 0
    start = tf.cast(rid, tf.int32) * per_replica
    return tf.slice(x, [start], [per_replica])


def begin_step(model, carry: dict, batch: dict) -> dict:
    """Resets halted slots (fresh latents, step 0, new data) and keeps the others (docs/model.md#carry-reset)."""
    halted = carry["halted"]
    out = dict(model.reset_carry(halted, carry))
    out["steps"] = tf.where(halted, 0, carry["steps"])
    for k in ("inputs", "labels", "puzzle_identifiers"):
        h = tf.reshape(halted, [-1] + [1] * (len(batch[k].shape) - 1))
        out[k] = tf.where(h, batch[k], carry[k])
    return out


HALT_RULES = ("q_halt", "q_halt_vs_continue")


def halting(
    steps,
    q_halt,
    min_halt,
    *,
    halt_max_steps: int,
    training: bool,
    halt_rule: str,
    q_continue=None,
):
    """Halting after a step (docs/model.md#halting): N_sup reached, or (training) the Q test past min_halt.

    `halt_rule` names the Q test: "q_halt" (TRM: q_halt > 0; q_continue is unused) or
    "q_halt_vs_continue" (HRM and the transformer baseline, the reference's no_ACT_continue=False:
    q_halt > q_continue; needs `q_continue`).
    """
    if halt_rule == "q_halt_vs_continue" and q_continue is None:
        raise ValueError("halt_rule 'q_halt_vs_continue' needs q_continue")
    passes = halt_flags(q_halt, q_continue, halt_rule)  # also validates halt_rule
    halted = steps >= halt_max_steps
    if training and halt_max_steps > 1:
        halted = halted | passes
        halted = halted & (steps >= min_halt)
        halted = halted | (steps >= halt_max_steps)
    return halted


def halt_flags(q_halt, q_continue, halt_rule: str):
    """Where the Q test `halt_rule` passes: q_halt > 0, or q_halt > q_continue (arrays or tensors)."""
    if halt_rule not in HALT_RULES:
        raise ValueError(f"halt_rule must be one of {HALT_RULES}, got {halt_rule!r}")
    return q_halt > (q_continue if halt_rule == "q_halt_vs_continue" else 0.0)


def _train_halt_rule(halt_rule: str, q_continue_target: bool) -> str:
    """The training core's halting rule, validated (with `q_continue_target`, it must be the comparison)."""
    if halt_rule not in HALT_RULES:
        raise ValueError(f"halt_rule must be one of {HALT_RULES}, got {halt_rule!r}")
    if q_continue_target and halt_rule != "q_halt_vs_continue":
        raise ValueError("q_continue_target needs halt_rule 'q_halt_vs_continue'")
    return halt_rule


def _bootstrap_q_target(model, latents, inputs, rows, steps, halt_max_steps: int, cycles):
    """HRM's bootstrapped Q-learning target for q_continue: one more forward from the new carry.

    sigmoid(q_halt') at the last step, else sigmoid(max(q_halt', q_continue')); no gradient flows.
    """
    nxt = model.inner(latents, inputs, rows, training=True, cycles=cycles)
    target = tf.sigmoid(
        tf.where(
            steps >= halt_max_steps,
            nxt["q_halt"],
            tf.maximum(nxt["q_halt"], nxt["q_continue"]),
        )
    )
    return tf.stop_gradient(target)


def _last_update_size(out) -> tf.Tensor:
    """Σ_b mean_{s,d}(z_H(T) − z_H(T−1))² in float32: the recursion regulariser's term before λ."""
    delta = tf.cast(out["z_H_grad"], tf.float32) - tf.cast(out["z_H_prev"], tf.float32)
    return tf.reduce_sum(tf.reduce_mean(tf.square(delta), axis=[1, 2]))


def _step_loss(
    model,
    cur,
    rows,
    min_halt,
    tape,
    *,
    cycles,
    halt_max_steps: int,
    halt_rule: str,
    q_continue_target: bool,
    loss_type: str,
    halt_penalty: float,
    recursion_reg: float,
):
    """One supervision step's forward, halting decision and summed loss (recorded on `tape`).

    Returns (model outputs, new step counts, halted flags, loss sum, metric sums); see `make_train_core`.
    """
    out = model.inner(cur, cur["inputs"], rows, training=True, cycles=cycles)
    steps = cur["steps"] + 1
    halted = halting(
        steps,
        out["q_halt"],
        min_halt,
        halt_max_steps=halt_max_steps,
        training=True,
        q_continue=out["q_continue"],
        halt_rule=halt_rule,
    )
    target = None
    if q_continue_target:
        with tape.stop_recording():
            target = _bootstrap_q_target(
                model, out["carry"], cur["inputs"], rows, steps, halt_max_steps, cycles
            )
    loss_sum, sums = losses.act_loss_and_metrics(
        out["logits"],
        cur["labels"],
        out["q_halt"],
        out["q_continue"],
        halted,
        steps,
        loss_type=loss_type,
        target_q_continue=target,
        halt_penalty=halt_penalty,
    )
    if recursion_reg:
        loss_sum = loss_sum + recursion_reg * _last_update_size(out)
    return out, steps, halted, loss_sum, sums


def make_train_core(
    model,
    *,
    global_batch_size: int,
    halt_max_steps: int,
    loss_type: str,
    halt_penalty: float = 0.0,
    recursion_reg: float = 0.0,
    jit_compile: bool = True,
    cycles=None,
    halt_rule: str,
    q_continue_target: bool = False,
):
    """Returns core(carry, batch, min_halt, loss_scale) -> (new_carry, grads, row_grads, metric_sums).

    Halting (docs/model.md#halting) is `halt_rule` ("q_halt": TRM's q_halt > 0; "q_halt_vs_continue":
    q_halt > q_continue, the rule of HRM and of the transformer baseline). `q_continue_target` adds
    HRM's bootstrapped Q-learning target for q_continue (one extra forward without gradient); without
    it q_continue gets no loss and no gradient, as in the reference's transformer baseline, whose
    q_continue bias only decays under weight decay.

    One supervision step forward + backward, compiled with XLA. The caller applies the optimizers outside
    this function (XLA around optimizer updates fails under tf.distribute on CPU; docs/model.md#tensorflow). Gradients are
    of loss_scale * loss_sum / global_batch_size (loss_scale is 1 except with float16 dynamic loss scaling),
    so summing them over replicas gives the reference's gradient. `cycles` = (H, L) overrides the model's
    recursion depth (curriculum).

    `recursion_reg` = λ > 0 (contrib04, not in the reference) adds λ · Σ_b mean_{s,d}(z_H(T) − z_H(T−1))²,
    the squared size of the last high-level update per slot (positions and channels averaged, float32).
    The earlier cycles run without gradient, so their terms of the trajectory penalty would be constants
    and only the last step is penalised. It pulls the recursion towards a fixed point. At λ == 0 the
    term is not built.
    """
    opts = dict(
        cycles=cycles,
        halt_max_steps=halt_max_steps,
        halt_rule=_train_halt_rule(halt_rule, q_continue_target),
        q_continue_target=q_continue_target,
        loss_type=loss_type,
        halt_penalty=halt_penalty,
        recursion_reg=recursion_reg,
    )
    variables = model.trainable_variables
    has_puzzle = model.puzzle_emb is not None

    def core(carry, batch, min_halt, loss_scale):
        cur = begin_step(model, carry, batch)
        rows = model.gather_puzzle_rows(cur["puzzle_identifiers"]) if has_puzzle else None
        with tf.GradientTape() as tape:
            if has_puzzle:
                tape.watch(rows)
            out, steps, halted, loss_sum, sums = _step_loss(
                model, cur, rows, min_halt, tape, **opts
            )
            loss = loss_sum / global_batch_size * loss_scale
        targets = list(variables) + ([rows] if has_puzzle else [])
        grads = tape.gradient(loss, targets)
        row_grads = grads[-1] if has_puzzle else None
        # Embedding gradients arrive as IndexedSlices; the vocabularies are tiny (<= 12 rows), so dense
        # tensors are cheaper than sparse updates and keep every optimizer's update rule simple.
        grads = [tf.convert_to_tensor(g) if g is not None else g for g in grads[: len(variables)]]
        new_carry = dict(cur, **out["carry"], steps=steps, halted=halted)
        sums["loss"] = loss_sum
        return new_carry, grads, row_grads, sums

    return tf.function(core, jit_compile=jit_compile, reduce_retracing=True)


def _eval_recursion(model, batch, fmask, halt_max_steps: int, halt_rule: str = "q_halt") -> dict:
    """`halt_max_steps` supervision steps from a fresh carry, with the per-step accuracy sums.

    Returns the last step's `logits`, `q_halt`, `q_continue`; `exact_per_step` / `token_per_step`
    [halt_max_steps] (sums over `fmask`); `stop_correct` / `stop_step` [B]: correctness and step at each
    example's first step passing the training's Q test `halt_rule` (q_halt > 0, or q_halt > q_continue),
    else the last step.
    """
    b = tf.shape(batch["inputs"])[0]
    latents = model.initial_carry(b)
    has_puzzle = model.puzzle_emb is not None
    rows = model.gather_puzzle_rows(batch["puzzle_identifiers"]) if has_puzzle else None
    labels = batch["labels"]
    exact_per_step = tf.TensorArray(tf.float32, size=halt_max_steps)
    token_per_step = tf.TensorArray(tf.float32, size=halt_max_steps)
    stopped = tf.zeros([b], tf.bool)
    stop_correct = tf.zeros([b], tf.float32)
    stop_step = tf.zeros([b], tf.float32)
    logits = tf.zeros([b, model.seq_len, model.vocab_size], tf.float32)
    q_halt = tf.zeros([b], tf.float32)
    q_continue = tf.zeros([b], tf.float32)
    for k in tf.range(halt_max_steps):
        out = model.inner(latents, batch["inputs"], rows, training=False)
        latents = out["carry"]
        logits, q_halt, q_continue = out["logits"], out["q_halt"], out["q_continue"]
        pe = losses.per_example_outputs(logits, labels, q_halt)
        correct = tf.cast(pe["seq_is_correct"], tf.float32)
        exact_per_step = exact_per_step.write(k, tf.reduce_sum(fmask * correct))
        token_per_step = token_per_step.write(k, tf.reduce_sum(fmask * pe["token_correct"]))
        stop_now = ~stopped & (
            halt_flags(q_halt, q_continue, halt_rule) | (k == halt_max_steps - 1)
        )
        stop_correct = tf.where(stop_now, correct, stop_correct)
        stop_step = tf.where(stop_now, tf.cast(k + 1, tf.float32), stop_step)
        stopped = stopped | stop_now
    return {
        "logits": logits,
        "q_halt": q_halt,
        "q_continue": q_continue,
        "exact_per_step": exact_per_step.stack(),
        "token_per_step": token_per_step.stack(),
        "stop_correct": stop_correct,
        "stop_step": stop_step,
    }


def make_eval_core(
    model,
    *,
    halt_max_steps: int,
    loss_type: str,
    jit_compile: bool = True,
    halt_rule: str = "q_halt",
):
    """Returns core(batch) -> dict: `halt_max_steps` supervision steps from a fresh carry (docs/model.md#evaluation).

    Outputs (sums over real, masked-in examples with labels):
      * `sums`: the final step's metrics as the reference reports them (count, accuracy, exact_accuracy,
        q_halt_accuracy, steps, lm_loss, q_halt_loss);
      * `exact_per_step`, `token_per_step` [halt_max_steps]: accuracy after each supervision step (how the
        answer improves with recursion; more steps than trained = test-time recursion);
      * `adaptive_exact`, `adaptive_steps`: accuracy and steps when each example stops at the first
        step passing the Q test the model was trained with (`halt_rule`: q_halt > 0 for TRM,
        q_halt > q_continue for HRM and the transformer baseline), or at the last step: the
        compute-aware inference of E4.2;
      * per-example `preds` [B, S] and `q_halt` [B] of the final step (for the ARC voting evaluator).
    """

    if halt_rule not in HALT_RULES:
        raise ValueError(f"halt_rule must be one of {HALT_RULES}, got {halt_rule!r}")

    def core(batch):
        labels = batch["labels"]
        counts = tf.reduce_sum(tf.cast(labels != losses.IGNORE_LABEL_ID, tf.int32), -1)
        real = batch["mask"] & (counts > 0)
        fmask = tf.cast(real, tf.float32)
        run = _eval_recursion(model, batch, fmask, halt_max_steps, halt_rule)
        logits, q_halt = run["logits"], run["q_halt"]
        steps = tf.fill([tf.shape(batch["inputs"])[0]], halt_max_steps)
        # `halted=real` restricts the metric sums to real examples; padded rows have no labels.
        _, sums = losses.act_loss_and_metrics(
            logits, labels, q_halt, run["q_continue"], real, steps, loss_type=loss_type
        )
        pe = losses.per_example_outputs(logits, labels, q_halt)
        target = tf.cast(pe["seq_is_correct"], tf.float32)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=q_halt)
        sums["q_halt_loss"] = tf.reduce_sum(fmask * bce)  # the reference also sums padded rows
        sums["adaptive_exact_accuracy"] = tf.reduce_sum(fmask * run["stop_correct"])
        sums["adaptive_steps"] = tf.reduce_sum(fmask * run["stop_step"])
        return {
            "sums": sums,
            "exact_per_step": run["exact_per_step"],
            "token_per_step": run["token_per_step"],
            "preds": pe["preds"],
            "q_halt": q_halt,
        }

    return tf.function(core, jit_compile=jit_compile, reduce_retracing=True)
