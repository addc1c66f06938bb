"""Optimizers, learning-rate schedule and EMA of the TRM training loop (docs/model.md#optimizers).

* `AdamATan2`: the reference's dense-parameter optimizer (`adam-atan2` 0.0.3), pure TF, Keras 3.
* `OPTIMIZERS`: the dense optimizers `optim.name` selects, each with how it is built and how many
  float32 slots it keeps per weight. The one list of optimizer names: `make_optimizer`, the memory
  estimate (`trm_tf.memory_estimate`) and, through an agreement test, `configs/validation.py` read it.
* `SparseSignSGD`: the puzzle-embedding optimizer (SignSGD with decay on touched rows only).
* The learning-rate schedule is `trm_tf.schedule`, the EMA `trm_tf.ema`.

Distribution design. The trainer runs forward/backward in a `tf.function(jit_compile=True)` and applies
these updates OUTSIDE that jit function but inside `strategy.run` (docs/model.md#tensorflow: XLA
around the update fails under strategies on CPU). Every variable write therefore goes through
`strategy.extended.update(var, fn, args)`, which works in replica context (each replica writes its
own copy with its own, identical, inputs) and in cross-replica context (one call per device, with
mirrored arguments unwrapped to that device's component), and is a plain call under the default
strategy. Variables created under `strategy.scope()` with the default `synchronization`/`aggregation`
(AUTO / NONE) are all that is needed; no special aggregation is required because no update ever
relies on TF aggregating replica values: gradients are summed explicitly (by Keras' all-reduce inside
`apply`, or once by the trainer before it with `apply_gradients_as_given`; the all-gather in
`SparseSignSGD`) and each replica then applies the same deterministic update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

from trm_tf.ema import unwrap_variable
from trm_tf.schedule import WarmupCosine

# --------------------------------------------------------------------------------------------------
# Dense optimizers
# --------------------------------------------------------------------------------------------------


class AdamATan2(keras.optimizers.Optimizer):
    """AdamATan2 exactly as `adam-atan2` 0.0.3 (docs/model.md#adamatan2), in pure TensorFlow.

    Per variable p with gradient g and step t = iterations + 1 (1-based), in float32:
      1. p ← p·(1 − lr·wd)                              (decoupled decay, FIRST, on every variable)
      2. m ← m + (1−β1)(g − m)
      3. v ← v + (1−β2)(g² − v)
      4. p ← p − lr/(1−β1^t) · atan2(m, sqrt(v)/sqrt(1−β2^t))
    No epsilon (atan2 is bounded, atan2(0, 0) = 0), no scale constants, β1 bias correction outside
    atan2. At t = 1: Δp = −10·atan(0.1)·lr·sign(g) ≈ −0.9967·lr·sign(g).

    The decay is implemented here (the Keras base `weight_decay` mechanism is left at None): the
    reference form is the multiplication p·(1 − lr·wd), and it must see the same `learning_rate` as
    the update.

    Distribution: Keras' TF optimizer SUM-all-reduces gradients in replica context (or the caller does,
    see `apply_gradients_as_given`), so the trainer must feed gradients of loss_sum / GLOBAL batch. Create and `build(variables)` the optimizer eagerly under
    `strategy.scope()` before tracing the train step (slot variables cannot be created inside
    `strategy.run`); `apply` may then be called inside `strategy.run` inside a (non-jit) tf.function.
    Slots (m, v) and `iterations` are checkpointed by `tf.train.Checkpoint(optimizer=opt)`.
    """

    def __init__(
        self,
        learning_rate=1e-4,
        weight_decay: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.95,
        name: str = "adam_atan2",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        self.decoupled_weight_decay = float(weight_decay)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        g = tf.cast(gradient, dtype)
        idx = self._get_variable_index(variable)
        m, v = self._m[idx], self._v[idx]
        t = tf.cast(self.iterations + 1, dtype)
        b1 = tf.constant(self.beta_1, dtype)
        b2 = tf.constant(self.beta_2, dtype)

        if self.decoupled_weight_decay != 0.0:
            self.assign(variable, variable * (1.0 - lr * self.decoupled_weight_decay))
        self.assign_add(m, (1.0 - b1) * (g - m))
        self.assign_add(v, (1.0 - b2) * (g * g - v))
        step_size = lr / (1.0 - tf.pow(b1, t))
        denom = tf.sqrt(v) / tf.sqrt(1.0 - tf.pow(b2, t))
        self.assign_sub(variable, step_size * tf.atan2(m, denom))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight_decay": self.decoupled_weight_decay,
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
            }
        )
        return config


def _as_given(grads_and_vars):
    """Stand-in for Keras' gradient all-reduce: the (gradient, variable) pairs unchanged."""
    return list(grads_and_vars)


def apply_gradients_as_given(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Makes `optimizer.apply` use the gradients it is given, without summing them over replicas.

    Keras 3's TensorFlow optimizer SUM-all-reduces the gradients inside `apply` whenever it runs in a
    replica context (`_all_reduce_sum_gradients` in its `_backend_update_step`). A caller that needs
    the reduced gradients itself (the trainer logs their norm) would otherwise pay for a second,
    identical all-reduce per step. After this call the caller owns the reduction: it must pass
    gradients already summed over replicas (identical on every replica), and each replica then
    applies the same update to its own copy of the variables, as Keras does after its own reduction.
    Keras exposes no option for this, so the instance's reduction step is replaced by the identity;
    everything else in `apply` (schedule, weight decay, iteration count, merge_call structure) runs
    unchanged, so it works under every strategy Keras supports.

    A `keras.optimizers.LossScaleOptimizer` is handled through its inner optimizer (the one that
    reduces). Its finiteness check then also sees the reduced gradients, so every replica takes the
    same skip/apply decision.

    Raises NotImplementedError when this Keras no longer reduces in `_all_reduce_sum_gradients`
    (silently reducing twice would multiply the gradients by the number of replicas).

    Returns the optimizer (modified in place).
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not callable(getattr(type(inner), "_all_reduce_sum_gradients", None)):
        raise NotImplementedError(
            f"{type(inner).__name__} has no _all_reduce_sum_gradients to bypass; this Keras "
            "version aggregates gradients differently"
        )
    object.__setattr__(inner, "_all_reduce_sum_gradients", _as_given)
    return optimizer


def _adam_atan2(learning_rate, weight_decay, beta1, beta2) -> keras.optimizers.Optimizer:
    """The reference (docs/model.md#adamatan2), decay inside `update_step`."""
    return AdamATan2(learning_rate, weight_decay=weight_decay, beta_1=beta1, beta_2=beta2)


def _adamw(learning_rate, weight_decay, beta1, beta2) -> keras.optimizers.Optimizer:
    """`keras.optimizers.AdamW` (decay via the Keras base class, same form and order); epsilon 1e-8
    (PyTorch's default) instead of Keras' 1e-7. Its step is ≈ lr·m̂/sqrt(v̂), the same scale as
    AdamATan2's ≈ lr·atan2(m̂, sqrt(v̂)), so lr and wd transfer roughly 1:1."""
    return keras.optimizers.AdamW(
        learning_rate, weight_decay=weight_decay, beta_1=beta1, beta_2=beta2, epsilon=1e-8
    )


def _lion(learning_rate, weight_decay, beta1, beta2) -> keras.optimizers.Optimizer:
    """`keras.optimizers.Lion` (β1, β2 passed through; Lion's paper uses β2 = 0.99). Its update
    lr·sign(·) has unit magnitude per coordinate, larger than Adam's typical step, so Lion usually
    wants a 3–10× smaller lr and a correspondingly larger wd for the same effective decay lr·wd."""
    return keras.optimizers.Lion(
        learning_rate, weight_decay=weight_decay, beta_1=beta1, beta_2=beta2
    )


@dataclasses.dataclass(frozen=True)
class DenseOptimizer:
    """One choice of `optim.name`: how it is built, and the float32 slots it keeps per weight (what the
    memory estimate counts; tests/optim_test.py checks the count against the built optimizer)."""

    build: Callable[..., keras.optimizers.Optimizer]  # (learning_rate, weight_decay, beta1, beta2)
    slots: int


# The dense optimizers by `optim.name`. Adding one: an entry here, its case in tests/optim_test.py, its
# name in configs/validation.py (configs do not import trm_tf; a test checks the two agree) and
# docs/model.md#optimizers.
OPTIMIZERS = {
    "adam_atan2": DenseOptimizer(_adam_atan2, slots=2),  # m, v
    "adamw": DenseOptimizer(_adamw, slots=2),  # m, v
    "lion": DenseOptimizer(_lion, slots=1),  # momentum
}


def dense_optimizer(name: str) -> DenseOptimizer:
    """The `OPTIMIZERS` entry of `name`; ValueError (one line, naming the choices) for another name."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def make_optimizer(o, total_steps: int) -> keras.optimizers.Optimizer:
    """The dense-parameter optimizer of the `optim` config section, with its learning-rate schedule
    (create it under `strategy.scope()`).

    The schedule is `WarmupCosine(o.lr, o.lr_warmup_steps, total_steps, o.lr_min_ratio)`. Decay
    conventions: every optimizer of `OPTIMIZERS` applies decoupled decay p ← p − lr·wd·p = p·(1 − lr·wd)
    BEFORE the gradient update, on every variable, with the same (scheduled) lr as the update.

    Args:
      o: `config.optim` (name, lr, lr_warmup_steps, lr_min_ratio, weight_decay, beta1, beta2).
      total_steps: the run's optimizer steps (the cosine reaches `lr_min_ratio` there).

    Returns:
      A Keras optimizer.
    """
    kind = dense_optimizer(o.name)
    schedule = WarmupCosine(o.lr, o.lr_warmup_steps, total_steps, o.lr_min_ratio)
    return kind.build(schedule, o.weight_decay, o.beta1, o.beta2)


# --------------------------------------------------------------------------------------------------
# Puzzle-embedding optimizer
# --------------------------------------------------------------------------------------------------


def _sum_duplicate_rows(ids: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """For each row i, the sum of grads[j] over all j with ids[j] == ids[i]; static shapes.

    Each row is mapped to the FIRST index holding its id (an [N, N] equality matrix reduced with
    min), the gradients are segment-summed onto those representatives and gathered back. This is an
    exact float32 sum (unlike an equality-matrix matmul, which TPUs run at reduced default
    precision and which could flip the sign of near-zero sums) and needs no tf.unique.
    """
    n = tf.shape(ids)[0]
    same = tf.equal(ids[:, None], ids[None, :])
    col = tf.broadcast_to(tf.range(n)[None, :], tf.shape(same))
    first = tf.reduce_min(tf.where(same, col, n), axis=1)
    summed = tf.math.unsorted_segment_sum(grads, first, num_segments=n)
    return tf.gather(summed, first)


class SparseSignSGD(tf.Module):
    """SignSGD with decoupled decay on the touched rows of the puzzle-embedding table
    (docs/model.md#signsgd).

    For every id present in the GLOBAL batch (all replicas): g = Σ of that id's gradient rows, then
    w[id] ← w[id]·(1 − lr·wd) − lr·sign(g). Rows not in the batch are untouched (no decay). The
    1/global_batch loss scaling is irrelevant under the sign.

    Table: a `tf.Variable` (or `keras.Variable`) [num_ids, D] created under `strategy.scope()` with
    `trainable=False` and default synchronization/aggregation; nothing else is required. Each replica
    all-gathers ids and gradients, so every replica computes the same rows and writes them into its own
    copy of the table (copies stay identical). The table is not tracked by this module (checkpoint it
    with the model).
    """

    _TF_MODULE_IGNORED_PROPERTIES = frozenset({"_table"})

    def __init__(self, table, weight_decay: float, name: str = "sparse_sign_sgd"):
        super().__init__(name=name)
        object.__setattr__(self, "_table", table)
        self.weight_decay = float(weight_decay)

    def apply(self, ids: tf.Tensor, grads: tf.Tensor, lr) -> None:
        """Applies one step; call in replica context (`strategy.run`) or with no strategy.

        Args:
          ids: int [B_local] puzzle identifiers of this replica's batch.
          grads: float [B_local, D] gradients w.r.t. the gathered rows (the model's local_weights).
          lr: learning rate (float or scalar tensor), e.g. `lr_at_step(step, puzzle_emb_lr, ...)`.
        """
        ctx = tf.distribute.get_replica_context()
        if ctx is None:
            raise RuntimeError(
                "SparseSignSGD.apply must run in replica context (inside strategy.run)"
            )
        ids = tf.reshape(tf.cast(ids, tf.int32), [-1])
        table = unwrap_variable(self._table)
        grads = tf.cast(grads, table.dtype)
        if ctx.num_replicas_in_sync > 1:
            ids = ctx.all_gather(ids, axis=0)
            grads = ctx.all_gather(grads, axis=0)
        g_sum = _sum_duplicate_rows(ids, grads)
        lr = tf.cast(lr, table.dtype)
        decay = 1.0 - lr * self.weight_decay
        step = lr * tf.sign(g_sum)

        def update(t, ids, decay, step):
            # Duplicate ids produce identical rows, so the scatter order does not matter.
            rows = tf.gather(t, ids) * decay - step
            return t.scatter_update(tf.IndexedSlices(rows, ids))

        tf.distribute.get_strategy().extended.update(
            table, update, args=(ids, decay, step), group=False
        )
