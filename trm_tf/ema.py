"""EMA of the dense parameters, and the helpers that write paired variables on every device.

Distribution design (shared with trm_tf.optim): updates run outside the XLA-compiled forward/backward
but inside `strategy.run`; every variable write goes through `strategy.extended.update(var, fn, args)`,
which works in replica context (each replica writes its own copy with its own, identical, inputs) and in
cross-replica context (one call per device, mirrored arguments unwrapped to that device's component),
and is a plain call under the default strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def unwrap_variable(v):
    """keras.Variable -> its tf.Variable (a MirroredVariable under a strategy); others unchanged."""
    return v.value if isinstance(v, keras.Variable) else v


def _in_replica_context_of_strategy() -> bool:
    """True inside `strategy.run` of a non-default strategy (where merge_call is meaningful)."""
    return tf.distribute.in_cross_replica_context() is False and tf.distribute.has_strategy()


def _strategy_for(var) -> tf.distribute.Strategy:
    """The current strategy, or the one owning `var` when called outside any scope.

    Lets cross-replica updates of mirrored variables work even when the caller's tf.function was
    traced outside `strategy.scope()` (the default strategy cannot update a MirroredVariable).
    """
    if not tf.distribute.has_strategy() and isinstance(var, tf.distribute.DistributedValues):
        return var.distribute_strategy
    return tf.distribute.get_strategy()


def _per_device(pairs, fn) -> None:
    """Runs fn(a_i, b_i) on each device's component of every (a, b) variable pair.

    Both a and b may be written. In replica context this hops to cross-replica context with
    merge_call so that b (not only a) is unwrapped to per-device components; under the default
    strategy it is a direct call.
    """

    def cross(strategy):
        for a, b in pairs:
            strategy.extended.update(a, fn, args=(b,), group=False)

    if _in_replica_context_of_strategy():
        tf.distribute.get_replica_context().merge_call(cross)
    elif pairs:
        cross(_strategy_for(pairs[0][0]))


class EMA(tf.Module):
    """Exponential moving average of parameters (reference models/ema.py; docs/model.md#ema).

    shadow ← rate·shadow + (1 − rate)·param after every step, no warmup, no bias correction; shadow
    starts equal to the parameters. Create under `strategy.scope()` (the shadows then mirror the
    parameters' devices). Pass only the dense parameters (not the puzzle table, not H_init/L_init).
    Only the shadows are tracked: `tf.train.Checkpoint(ema=ema)` saves/restores them.

    Evaluation on EMA weights: `ema.swap()`, evaluate, `ema.swap()` (exact round trip), or
    `ema.copy_to(other_model_variables)`.
    """

    _TF_MODULE_IGNORED_PROPERTIES = frozenset({"_live", "_swap_fn"})

    def __init__(self, variables, rate: float = 0.999, name: str = "ema"):
        super().__init__(name=name)
        live = [unwrap_variable(v) for v in variables]
        object.__setattr__(self, "_live", live)
        self.rate = float(rate)
        self.shadows = [
            tf.Variable(tf.identity(v), trainable=False, name=f"shadow_{i}")
            for i, v in enumerate(live)
        ]
        # The compiled swap, traced on the first eager call (not a checkpoint dependency).
        object.__setattr__(self, "_swap_fn", None)

    def update(self) -> None:
        """shadow ← rate·shadow + (1−rate)·param; in replica context (strategy.run) or outside it."""
        rate, one_minus = self.rate, 1.0 - self.rate

        def upd(s, v):
            return s.assign(one_minus * tf.cast(v, s.dtype) + rate * s)

        # `extended.update` is context-aware: in replica context each replica updates its own shadow
        # (reading `v` gives the replica's local value); in cross-replica context it runs once per
        # device with `v` unwrapped to that device's component.
        for s, v in zip(self.shadows, self._live):
            _strategy_for(s).extended.update(s, upd, args=(v,), group=False)

    def swap(self) -> None:
        """Exchanges parameter and shadow values (call twice to restore; bit-exact).

        Called eagerly (the trainer, around every evaluation), it runs one tf.function traced on the
        first call: two reads and two writes per variable and device in one dispatch, instead of as
        many eager ops, each a host round trip to a remote accelerator. Called while tracing (or
        inside `strategy.run`), it adds the same ops to the caller's graph: a nested tf.function
        there could not make the merge_call a mirrored update needs.
        """
        if tf.inside_function() or _in_replica_context_of_strategy():
            self._swap_body()
            return
        if self._swap_fn is None:
            object.__setattr__(self, "_swap_fn", tf.function(self._swap_body, autograph=False))
        self._swap_fn()

    def _swap_body(self) -> None:
        def sw(s, v):
            # Resource ops run in program order (eager, and auto control deps in tf.function); the
            # values are only copied, never computed on, so the round trip is exact.
            tmp = tf.identity(v.read_value())
            v.assign(s.read_value())
            s.assign(tmp)

        _per_device(list(zip(self.shadows, self._live)), sw)

    def copy_to(self, variables) -> None:
        """Writes the shadow values into `variables` (same structure as the EMA's parameters)."""
        pairs = [(unwrap_variable(v), s) for v, s in zip(variables, self.shadows, strict=True)]
        _per_device(pairs, lambda v, s: v.assign(s.read_value()))

    def assign_from(self, variables=None) -> None:
        """Resets the shadows to `variables` (default: the tracked parameters)."""
        src = self._live if variables is None else [unwrap_variable(v) for v in variables]
        pairs = list(zip(self.shadows, src, strict=True))
        _per_device(pairs, lambda s, v: s.assign(tf.cast(v.read_value(), s.dtype)))
