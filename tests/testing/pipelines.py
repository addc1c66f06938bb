"""Shared helpers of the input-pipeline tests: reading a split directly with TFDS, and the two-replica
emulation of a two-host pod (the tiny datasets are fixtures in tests/data/conftest.py)."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfds_builders.builder_utils import CORE_FEATURES


def take(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


def pod():
    """Two replicas, one input pipeline each: the CPU rehearsal of a two-host pod."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def per_replica_batches(strategy, dist, n):
    """n steps of a distributed dataset as [step][replica] dicts of numpy arrays."""
    it = iter(dist)
    out = []
    for _ in range(n):
        local = strategy.experimental_local_results(next(it))
        out.append([tf.nest.map_structure(lambda t: t.numpy(), r) for r in local])
    return out


def read_split(spec, split, pipeline=0, pipelines=1, features=CORE_FEATURES):
    """A split (or one pipeline's round-robin share of its files) as numpy arrays, in TFDS file order."""
    ctx = None
    if pipelines > 1:
        ctx = tf.distribute.InputContext(pipelines, pipeline, pipelines)
    builder = tfds.builder(spec.name, data_dir=spec.data_dir)
    ds = builder.as_dataset(
        split=split, shuffle_files=False, read_config=tfds.ReadConfig(input_context=ctx)
    )
    rows = list(tfds.as_numpy(ds))
    return {k: np.stack([r[k] for r in rows]) for k in features}


def task_names(spec):
    """The task names of a split's test rows, read directly (what the trainer takes from the ground truth)."""
    return {t.decode() for t in read_split(spec, "test", features=("task_name",))["task_name"]}
