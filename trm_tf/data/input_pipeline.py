"""The training input pipeline that runs on the hosts of a TPU pod: the reference's group sampler over each
host's examples, batched and distributed to the replicas.

The pieces it puts together: `trm_tf.data.records` (the pod model, host sharding, reading TFRecords) and
`trm_tf.data.sampler` (the reference's group sampler and exact resume). The padded evaluation stream is
`trm_tf.data.eval_input`.

**Reading the train split.** From the split's decoded cache (written by the build) when
`trm_tf.data.cache.open_cache` accepts it (raw arrays, one file per TFRecord file: a start reads bytes
instead of parsing every example; "files" reads the host's own cache files, "groups" filters each file as
it is read), else from the TFRecords. Either way
the host logs one line with the number of examples and the seconds it took, and the batches are the same.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from tfds_builders import decoded_cache as layout
from tfds_builders.builder_utils import CORE_FEATURES
from trm_tf.data import cache as decoded_cache
from trm_tf.data.records import (
    dataset_options,
    host_position,
    read_records,
    resolve_host_sharding,
    whole,
)
from trm_tf.data.sampler import GroupSampler
from trm_tf.data.spec import DatasetSpec
from trm_tf.losses import IGNORE_LABEL_ID


def _host_examples(spec, mode, input_context, decoded) -> tf.data.Dataset:
    """One element: this host's training examples ([n, ...] tensors of CORE_FEATURES, plus the cache's
    `rank` when read from `decoded`), and a one-line log of how long reading them took on the host."""
    host, hosts, _ = host_position(input_context)
    if decoded is not None:
        if mode == "files":
            if len(decoded.paths) < hosts:
                raise ValueError(
                    f"{spec.name} has {len(decoded.paths)} train files for {hosts} hosts"
                )
            ds = decoded_cache.load_examples(decoded, slice(host, None, hosts))
        else:
            ds = decoded_cache.load_examples(
                decoded, hosts=hosts if mode == "groups" else 1, host=host
            )
        source = "decoded cache"
    else:
        ds = read_records(spec, "train", CORE_FEATURES, input_context if mode == "files" else None)
        ds = ds.map(lambda ex: {k: ex[k] for k in CORE_FEATURES})
        if mode == "groups" and hosts > 1:
            ds = ds.filter(lambda ex: ex["group"] % hosts == host)
        ds, source = whole(ds), "TFRecords"
    start = tf.data.Dataset.from_tensors(0).map(lambda _: tf.timestamp())

    def timed(t0):
        def report(data):
            seconds = tf.timestamp() - t0
            n = tf.shape(data["group"])[0]
            done = tf.print(
                f"data: host {host} of {hosts}:",
                n,
                f"{spec.name} train examples from {source} in",
                tf.strings.as_string(seconds, precision=1),
                "s",
            )
            with tf.control_dependencies([done]):
                return {k: tf.identity(v) for k, v in data.items()}

        return ds.map(report)

    return start.flat_map(timed)


def make_train_dataset(
    spec: DatasetSpec,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    prefetch: int = 4,
    host_sharding: str = "auto",
    use_cache: bool | decoded_cache.DecodedCache = True,
) -> tf.data.Dataset:
    """The infinite training stream of per-replica batches for this pipeline, positioned at `start_step`.

    `host_sharding`: "auto" | "groups" | "files" | "stream" (see the module docstring). The sampler's seed
    stream is (seed, pipeline index) for "groups" and "files" (hosts sample independently) and (seed, 0) for
    "stream" (one global stream). Built from tf.data ops only: the dataset graph holds no examples.
    `use_cache`: read the split's decoded cache (`trm_tf.data.cache`) when it is valid (True), never
    (False), or this already validated one; the batches are the same either way.
    """
    mode = resolve_host_sharding(spec, host_sharding)
    host, hosts, local_replicas = host_position(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    # What can be checked on the client is checked here; a host's own share is only known at run time, where
    # an in-graph assertion guards it.
    if spec.num_train_examples < batch:
        raise ValueError(
            f"{spec.num_train_examples} training examples, fewer than one batch of {batch}"
        )
    if mode == "groups" and spec.total_groups < hosts:
        raise ValueError(
            f"host_sharding='groups' needs a group per host, but {spec.name} has "
            f"{spec.total_groups} groups for {hosts} hosts"
        )
    if use_cache is True:
        use_cache = decoded_cache.open_cache(spec, "train")
    ds = _host_examples(spec, mode, input_context, use_cache or None)
    num_replicas = hosts * local_replicas
    if mode == "stream":
        # Batch i of the global stream feeds replica i % R; this pipeline keeps its replicas' batches.
        shard, first_batch = 0, start_step * num_replicas
    else:
        shard, first_batch = host, start_step * local_replicas
    stream = functools.partial(
        _sampled_batches,
        batch=batch,
        seed=seed,
        shard=shard,
        first_batch=first_batch,
        ignore=spec.ignore_label_id,
        keep=(host, num_replicas, local_replicas) if mode == "stream" else None,
    )
    ds = ds.flat_map(stream)
    return ds.prefetch(prefetch).with_options(dataset_options())


def _sampled_batches(data, batch, seed, shard, first_batch, ignore, keep=None) -> tf.data.Dataset:
    """The sampler's batches over one host's examples `data` (one element of `_host_examples`), from batch
    `first_batch` on. `keep` = (host, replicas, replicas per host) keeps this host's batches of the one
    global stream ("stream" sharding): batch i feeds replica i % replicas."""
    n = tf.shape(data["group"], out_type=tf.int64)[0]
    enough = tf.debugging.assert_greater_equal(
        n,
        tf.constant(batch, tf.int64),
        message=f"training examples on this host are fewer than one batch of {batch}",
    )
    with tf.control_dependencies([enough]):
        group = tf.identity(data["group"])
    sampler = GroupSampler(group, data["puzzle_index"], seed, shard, data.get(layout.RANK))

    def gather(index):
        lab = tf.cast(tf.gather(data["labels"], index), tf.int32)
        return {
            "inputs": tf.cast(tf.gather(data["inputs"], index), tf.int32),
            "labels": tf.where(lab == ignore, IGNORE_LABEL_ID, lab),
            "puzzle_identifiers": tf.cast(tf.gather(data["puzzle_identifier"], index), tf.int32),
        }

    index = sampler.index_dataset(batch, first_batch)
    if keep is not None:
        host, replicas, local = keep
        index = index.enumerate(first_batch).filter(lambda i, _: (i % replicas) // local == host)
        index = index.map(lambda _, idx: idx)
    return index.map(gather)


def distribute_train(
    strategy,
    spec,
    global_batch_size,
    seed,
    start_step=0,
    prefetch=4,
    host_sharding="auto",
    options=None,
    use_cache=True,
):
    """Distributed training stream (`distribute_datasets_from_function`; `options` from `records.input_options`).

    The decoded cache is validated here, on the client, once per process (`cache.open_cache`), not once
    per host pipeline."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    resolve_host_sharding(
        spec, host_sharding
    )  # Fail in the caller, not inside a pipeline function.

    if use_cache is True:
        use_cache = decoded_cache.open_cache(spec, "train") or False

    def fn(ctx):
        return make_train_dataset(
            spec, global_batch_size, seed, start_step, ctx, prefetch, host_sharding, use_cache
        )

    return strategy.distribute_datasets_from_function(fn, options)
