"""Checkpoint files: the per-host ACT carry round-trips bit for bit in every forward dtype."""

import types

import numpy as np
import pytest
import tensorflow as tf

from trm_tf.carry import CarryState
from trm_tf.checkpointing import CheckpointIO, decode_arrays, encode_arrays


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_encode_decode_round_trips_every_dtype(dtype):
    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(2, 3, 5)), dtype).numpy()
    values = {"z": x, "steps": np.arange(4, dtype=np.int32), "halted": np.array([True, False])}
    back = decode_arrays(encode_arrays(values))
    for k, v in values.items():
        assert back[k].dtype == v.dtype, k
        np.testing.assert_array_equal(back[k].view(np.uint8), v.view(np.uint8), err_msg=k)


def test_plain_npz_carry_files_still_load():
    import io

    buf = io.BytesIO()
    np.savez(buf, steps=np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(decode_arrays(buf.getvalue())["steps"], np.arange(3))


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float16])
def test_checkpoint_restores_the_carry_of_every_replica_in_its_dtype(tmp_path, dtype):
    """Save and restore through CheckpointIO under two replicas: latents, counters, flags, data."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def make():
        with strategy.scope():
            carry = CarryState(3, 5, 4, 6, dtype)
            step = tf.Variable(
                0, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
            )
        # The parts of a Trainer that CheckpointIO reads; no model weights (restore checks those finite).
        trainer = types.SimpleNamespace(
            carry=carry,
            strategy=strategy,
            step=step,
            model=types.SimpleNamespace(variables=[]),
            optimizer=None,
            ema=None,
            checkpoint=lambda: tf.train.Checkpoint(step=step),
        )
        return trainer

    src = make()
    rng = np.random.default_rng(1)
    for c in src.carry._components(strategy):
        for v in c.values():
            shape = v.shape.as_list()
            if v.dtype == tf.bool:
                v.assign(rng.random(shape) < 0.5)
            elif v.dtype.is_integer:
                v.assign(rng.integers(0, 9, shape).astype(np.int32))
            else:
                v.assign(tf.cast(rng.normal(size=shape), v.dtype))
    src.step.assign(7)
    saved = src.carry.local_values(strategy)
    CheckpointIO(src, str(tmp_path), 2, chief=True, worker=0).save(7)

    dst = make()
    assert CheckpointIO(dst, str(tmp_path), 2, chief=True, worker=0).restore_latest() == 7
    restored = dst.carry.local_values(strategy)
    for k, v in saved.items():
        assert restored[k].dtype == v.dtype, k
        np.testing.assert_array_equal(restored[k].view(np.uint8), v.view(np.uint8), err_msg=k)


def test_bfloat16_carry_stored_wider_reads_and_saves_as_bfloat16():
    """Several worker processes store a bf16 carry in float32 (no bf16 broadcast kernel); the values the
    step sees and the carry files keep the compute dtype, and the round trip is exact."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        carry = CarryState(2, 3, 4, 5, tf.bfloat16, storage_dtype=tf.float32)
    assert carry.vars["z_H"].dtype == tf.float32
    values = carry.local_values(strategy)
    z = tf.cast(np.random.default_rng(0).normal(size=values["z_H"].shape), tf.bfloat16).numpy()
    carry.load_local_values(strategy, dict(values, z_H=z))
    back = carry.local_values(strategy)
    assert back["z_H"].dtype == z.dtype
    np.testing.assert_array_equal(back["z_H"].view(np.uint16), z.view(np.uint16))
    assert strategy.run(lambda: carry.read()["z_L"].dtype == tf.bfloat16)
