"""Reading a split on the hosts of a TPU pod: host sharding, TFDS records, and dataset options shared by the
training and evaluation pipelines.

**The pod model.** On a pod one client process drives every host: `distribute_datasets_from_function(fn)`
calls `fn(ctx)` once per host *in the client*, and the dataset graph `fn` returns is shipped to that host's
CPU, where it runs. So nothing here reads data in Python: whatever `fn` materialised as numpy would be
computed on the client and embedded in the graph as constants, and TF graphs are limited to 2 GB (ARC-AGI with
1000 augmentations is about 8 GB of examples). Every pipeline is therefore built from tf.data ops only: the
host reads and parses its own TFRecords at run time, and the dataset graph holds file names and code, never
examples (its size does not grow with the split). On one machine the same code emulates a pod with
`MirroredStrategy` over N logical CPUs and `input_options("per_replica")`: one pipeline per replica, each
playing one host.

**Host sharding** of the training split (`host_sharding`):

* "groups": every host reads all train files and keeps the examples whose `group % hosts == host`, so a puzzle
  group (an ARC task's augmented copies with all their demonstration examples) lives on one host (each host
  reads and parses the whole split once at start-up, but keeps only its 1/hosts share in memory);
* "files": each host reads only its own files (`tfds.ReadConfig(input_context=...)`, round-robin). Cheapest,
  but only valid when every puzzle has one example: TFDS writes records in hashed-key order, so the examples of
  one puzzle land in different files and hence on different hosts;
* "stream": every host reads everything and keeps its replicas' batches of the one global stream, so any
  topology sees exactly the batches of a single-device run (for splits that fit every host: Sudoku, Maze);
* "auto": "files" when every puzzle has one example (`spec.mean_puzzle_examples == 1`), else "groups".
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfds_builders.decoded_cache import read_split
from trm_tf.data.datasets import tfds_builder
from trm_tf.data.spec import DatasetSpec

HOST_SHARDING = ("auto", "groups", "files", "stream")
# Batch size that puts a host's whole share of a split into one tf.data element (tf.data only reserves
# min(batch, 65536) slots up front, so a huge value costs nothing).
_WHOLE_SPLIT = 1 << 40


def dataset_options() -> tf.data.Options:
    opts = tf.data.Options()
    opts.autotune.enabled = False  # Autotune stalls short runs for seconds.
    opts.deterministic = True
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return opts


def input_options(mode: str) -> tf.distribute.InputOptions | None:
    """`tf.distribute.InputOptions` for `runtime.input_pipelines`.

    "per_host": None (the strategy's default: one pipeline per host feeding its local replicas);
    "per_replica": one pipeline per replica (`InputReplicationMode.PER_REPLICA`), so N logical CPUs of one
    process emulate the N hosts of a pod. The pipeline stays on the host CPU (`place_dataset_on_device` off)
    and batches are prefetched to each replica's device (`fetch_to_device`), the combination TF accepts for
    PER_REPLICA under MirroredStrategy.
    """
    if mode == "per_host":
        return None
    if mode == "per_replica":
        return tf.distribute.InputOptions(
            experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
            experimental_fetch_to_device=True,
            experimental_place_dataset_on_device=False,
        )
    raise ValueError(f"input pipelines must be 'per_host' or 'per_replica', got {mode!r}")


def resolve_host_sharding(spec: DatasetSpec, host_sharding: str) -> str:
    """The effective sharding mode ("groups" | "files" | "stream"); rejects "files" for multi-example puzzles."""
    if host_sharding not in HOST_SHARDING:
        raise ValueError(f"host_sharding must be one of {HOST_SHARDING}, got {host_sharding!r}")
    one_example = spec.mean_puzzle_examples <= 1
    if host_sharding == "auto":
        return "files" if one_example else "groups"
    if host_sharding == "files" and not one_example:
        raise ValueError(
            f"host_sharding='files' needs one example per puzzle, but {spec.name} has "
            f"{spec.mean_puzzle_examples:.3g} (TFDS spreads a puzzle's examples over files); use 'groups'"
        )
    return host_sharding


def host_position(ctx: tf.distribute.InputContext | None) -> tuple[int, int, int]:
    """(pipeline index, number of pipelines, replicas fed by this pipeline)."""
    if ctx is None:
        return 0, 1, 1
    return (
        ctx.input_pipeline_id,
        ctx.num_input_pipelines,
        ctx.num_replicas_in_sync // ctx.num_input_pipelines,
    )


def read_records(
    spec: DatasetSpec,
    split: str,
    features: Sequence[str],
    input_context: tf.distribute.InputContext | None = None,
    add_tfds_id: bool = False,
) -> tf.data.Dataset:
    """Examples of `split` (only `features` are decoded), in file order; this pipeline's files only when
    `input_context` has several pipelines (TFDS deals the files round-robin). `add_tfds_id` adds TFDS's
    example id ("<file name>__<index in file>"), from which the decoded cache learns this order."""
    ctx = input_context if input_context and input_context.num_input_pipelines > 1 else None
    builder = tfds_builder(spec.name, spec.data_dir)
    return read_split(builder, split, features, ctx, add_tfds_id)


def whole(ds: tf.data.Dataset) -> tf.data.Dataset:
    """One element holding every example of `ds` ([n, ...] tensors; n = 0 when `ds` is empty)."""
    empty = tf.data.Dataset.from_tensors(
        tf.nest.map_structure(lambda s: tf.zeros([0] + s.shape.as_list(), s.dtype), ds.element_spec)
    )
    return ds.batch(_WHOLE_SPLIT).concatenate(empty).take(1)
