"""The ACT carry: per-replica variables holding each slot's latent states, step count, halted flag and current
data between supervision steps (the semantics are in trm_tf/act.py and docs/model.md#act-carry).

The carry lives in per-replica (`SyncOnRead`) variables, so it survives across steps and across the compiled
inner loop without host round trips, and each replica owns its slots.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trm_tf import losses

# The carry's bookkeeping entries; the latents are named by the model's `carry_spec()`.
BOOK_KEYS = ("steps", "halted", "inputs", "labels", "puzzle_identifiers")
DEFAULT_LATENTS = ("z_H", "z_L")  # latents when no spec is given (TRM's two states)


def _local_var(value, name):
    return tf.Variable(
        value,
        trainable=False,
        name=name,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


class CarryState(tf.Module):
    """Per-replica ACT carry: latent states, step counters, halted flags and the slots' current data.

    Create under `strategy.scope()`. `read()` / `assign()` in replica context touch only the local replica's
    slots. `local_values()` / `load_local_values()` move all local replicas' carries to and from numpy for the
    per-host carry files of a checkpoint (a tf.train.Checkpoint would keep only replica 0's copy).

    The latents are the entries of `spec` (the model's `carry_spec()`: name -> per-example shape), each
    [batch_size, *shape]; without a spec, `z_H` and `z_L` of [total_len, hidden] each. `keys` lists the
    latents first, then `BOOK_KEYS`.

    `storage_dtype` (default: `dtype`) holds the latents in a wider type than they are computed in: under
    MultiWorkerMirroredStrategy every variable's initial value is broadcast from the chief with collective
    ops that have no bfloat16 kernel, so a bfloat16 carry is stored in float32 there (exactly: every
    bfloat16 value is a float32 value). `read()` and `local_values()` always give `dtype`.
    """

    def __init__(
        self,
        batch_size: int,
        total_len: int,
        seq_len: int,
        hidden: int,
        dtype,
        spec=None,
        storage_dtype=None,
    ):
        super().__init__(name="carry")
        b = batch_size
        self.batch_size = b
        self.dtype = tf.as_dtype(dtype)
        store = tf.as_dtype(storage_dtype or dtype)
        if spec is None:
            spec = {k: tf.TensorSpec((total_len, hidden), self.dtype) for k in DEFAULT_LATENTS}
        self.latent_keys = tuple(spec)
        self.keys = self.latent_keys + BOOK_KEYS
        self.vars = {k: _local_var(tf.zeros([b, *spec[k].shape], store), k) for k in spec}
        self.vars.update(
            {
                "steps": _local_var(tf.zeros([b], tf.int32), "steps"),
                # All slots start halted: the first step loads data and resets the latents.
                "halted": _local_var(tf.ones([b], tf.bool), "halted"),
                "inputs": _local_var(tf.zeros([b, seq_len], tf.int32), "inputs"),
                "labels": _local_var(tf.fill([b, seq_len], losses.IGNORE_LABEL_ID), "labels"),
                "puzzle_identifiers": _local_var(tf.zeros([b], tf.int32), "puzzle_identifiers"),
            }
        )

    def read(self) -> dict[str, tf.Tensor]:
        out = {
            k: v.value() if hasattr(v, "value") else tf.identity(v) for k, v in self.vars.items()
        }
        for k in self.latent_keys:
            out[k] = tf.cast(out[k], self.dtype)
        return out

    def assign(self, carry: dict[str, tf.Tensor]) -> None:
        for k in self.keys:
            self.vars[k].assign(tf.cast(carry[k], self.vars[k].dtype))

    def _components(self, strategy) -> list[dict[str, tf.Variable]]:
        per_key = {k: strategy.experimental_local_results(v) for k, v in self.vars.items()}
        n = len(per_key["steps"])
        return [{k: per_key[k][i] for k in self.keys} for i in range(n)]

    def local_values(self, strategy) -> dict[str, np.ndarray]:
        """All local replicas' carries, stacked on a leading replica axis."""
        comps = self._components(strategy)
        out = {k: np.stack([c[k].numpy() for c in comps]) for k in self.keys}
        for k in self.latent_keys:
            out[k] = out[k].astype(self.dtype.as_numpy_dtype)
        return out

    def load_local_values(self, strategy, values: dict[str, np.ndarray]) -> None:
        comps = self._components(strategy)
        if values["steps"].shape[0] != len(comps):
            raise ValueError(
                f"carry has {values['steps'].shape[0]} replicas, this host has {len(comps)}"
            )
        missing = sorted(set(self.keys) - set(values))
        if missing:  # e.g. a carry file of another arch: a fresh carry is the caller's fallback
            raise ValueError(f"carry file lacks {missing}")
        for k in self.latent_keys:
            if values[k].dtype != self.dtype.as_numpy_dtype:
                raise ValueError(
                    f"carry {k} is {values[k].dtype}, this run computes in {self.dtype.name}"
                )
            if values[k].shape[1:] != tuple(comps[0][k].shape):
                raise ValueError(
                    f"carry {k} has shape {values[k].shape[1:]}, expected "
                    f"{tuple(comps[0][k].shape)}"
                )
        for i, c in enumerate(comps):
            for k in self.keys:
                c[k].assign(tf.cast(values[k][i], c[k].dtype))
