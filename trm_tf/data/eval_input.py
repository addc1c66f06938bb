"""The evaluation pipeline: every test example of a host once (or a task-complete subset), padded.

**Evaluation** yields every test example of the host exactly once (the host's test files, round-robin, in
file order), padded with masked rows (inputs = pad, labels = ignore, mask False) to the same number of batches
on every host, so that collective ops in the eval step stay in lockstep across hosts. Per-example metadata that
an evaluator needs (for ARC: which task, which test pair, which augmentation) travels with the batch as int32
tensors, so every replica's outputs can be scored with the rows it actually processed. A *task-complete
subset* (`tasks`: ARC's periodic evaluations) instead yields every row of a fixed set of tasks: each host
reads the whole test split and keeps the rows of its share of the tasks (the sorted task names dealt
round-robin, as the "groups" sharding deals training groups), so the union over hosts is the same rows for
any number of hosts, each row on one host; the padded length comes from an upper bound on each task's rows.

Batches are dicts of int32 tensors: `inputs` [B, S], `labels` [B, S] (ignore -> -100), `puzzle_identifiers`
[B], plus `mask` (bool [B]) and the requested extra features for evaluation; shapes are static
(drop_remainder / padding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from trm_tf.data import datasets
from trm_tf.data.records import dataset_options, host_position, read_records
from trm_tf.data.spec import DatasetSpec
from trm_tf.losses import IGNORE_LABEL_ID

# Eval feature computed from the string `task_name` (index into the caller's sorted task names).
TASK_ID = "task_id"


def eval_task_shares(tasks: Mapping[str, int], num_hosts: int) -> list[list[str]]:
    """Each host's tasks of a task-complete subset: the sorted names dealt round-robin to the hosts."""
    names = sorted(tasks)
    return [names[h::num_hosts] for h in range(num_hosts)]


def eval_examples_per_host(
    spec: DatasetSpec,
    num_hosts: int,
    subset_size: int = -1,
    tasks: Mapping[str, int] | None = None,
) -> int:
    """Largest number of test examples any host reads (files are dealt to hosts round-robin).

    With `tasks` (task name -> upper bound on its test rows; a task-complete subset) it is the largest sum
    of the bounds of one host's share (`eval_task_shares`); `subset_size` is then ignored.
    """
    if tasks is not None:
        return max(
            sum(int(tasks[t]) for t in share) for share in eval_task_shares(tasks, num_hosts)
        )
    shards = spec.test_shard_lengths or (spec.num_test_examples,)
    if num_hosts > 1 and len(shards) < num_hosts:
        raise ValueError(
            f"{spec.name} test split has {len(shards)} files but there are {num_hosts} hosts; "
            "rebuild it with more shards"
        )
    most = max(sum(shards[h::num_hosts]) for h in range(num_hosts))
    if subset_size > 0:
        most = min(most, math.ceil(subset_size / num_hosts))
    return most


def make_eval_dataset(
    spec: DatasetSpec,
    global_batch_size: int,
    subset_size: int = -1,
    input_context: tf.distribute.InputContext | None = None,
    extra_features: Sequence[str] = (),
    task_names: Sequence[str] | None = None,
    tasks: Mapping[str, int] | None = None,
) -> tuple[tf.data.Dataset, int]:
    """Test examples of this pipeline once, in file order, padded with masked rows; returns (dataset, steps).

    `steps` (the number of global eval batches) is the same on every host. Each batch has `inputs`,
    `labels`, `puzzle_identifiers`, `mask` (bool; False on padding) and the `extra_features` as int32:
    integer features of the split (e.g. ARC's `test_index`, `transform_id`, `color_map` [10]) are cast, and
    "task_id" is the index of the row's `task_name` in `task_names` (the sorted task names of the ground
    truth; -1 for a name not in it), looked up in-graph because strings cannot travel to a TPU. Padded rows
    have inputs = pad, labels = -100, the blank puzzle identifier and zeros for the extra features.
    `subset_size` > 0 keeps the first ceil(subset_size / hosts) examples of each host (a fixed subset).
    `tasks` (task name -> upper bound on its rows, e.g. (augmentations + 1) x test pairs) selects a
    task-complete subset instead: every row of those tasks, this host keeping its share
    (`eval_task_shares`); a host whose share has more rows than the bounds allow fails in-graph rather
    than silently dropping rows.
    """
    host, hosts, local_replicas = host_position(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    per_host = eval_examples_per_host(spec, hosts, subset_size, tasks)
    host_batch = batch * local_replicas
    steps = max(1, math.ceil(per_host / host_batch))
    padded = steps * host_batch

    read, encode, pad = _row_codec(spec, extra_features, task_names)
    if tasks is None:
        ds = read_records(spec, "test", read, input_context).take(per_host)
    else:
        read = read if "task_name" in read else read + ("task_name",)
        share = eval_task_shares(tasks, hosts)[host]
        ds = _task_rows(read_records(spec, "test", read), share, per_host)
    ds = ds.map(encode)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat()).take(padded)
    ds = ds.batch(batch, drop_remainder=True)
    return ds.prefetch(2).with_options(dataset_options()), steps


def _row_codec(spec: DatasetSpec, extra_features: Sequence[str], task_names: Sequence[str] | None):
    """(features to read, row encoder, padding row) of an eval stream with `extra_features`."""
    info = datasets.tfds_builder(spec.name, spec.data_dir).info.features
    extra_features = tuple(extra_features)
    for k in extra_features:
        if k != TASK_ID and (k not in info or not np.issubdtype(info[k].np_dtype, np.integer)):
            raise ValueError(f"extra eval feature {k!r} is not an integer feature of {spec.name}")
    read = ("inputs", "labels", "puzzle_identifier") + tuple(
        "task_name" if k == TASK_ID else k for k in extra_features
    )
    shapes = {k: () if k == TASK_ID else tuple(info[k].shape) for k in extra_features}
    table = None
    if TASK_ID in extra_features:
        if task_names is None:
            raise ValueError(f"extra feature {TASK_ID!r} needs task_names")
        names = tf.constant(list(task_names), tf.string, shape=[len(task_names)])
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(names, tf.range(len(task_names), dtype=tf.int32)),
            default_value=-1,
        )
    ignore = spec.ignore_label_id

    def encode(ex):
        lab = tf.cast(ex["labels"], tf.int32)
        out = {
            "inputs": tf.cast(ex["inputs"], tf.int32),
            "labels": tf.where(lab == ignore, IGNORE_LABEL_ID, lab),
            "puzzle_identifiers": tf.cast(ex["puzzle_identifier"], tf.int32),
            "mask": tf.constant(True),
        }
        for k in extra_features:
            out[k] = table.lookup(ex["task_name"]) if k == TASK_ID else tf.cast(ex[k], tf.int32)
        return out

    pad = {
        "inputs": tf.fill([spec.seq_len], tf.constant(spec.pad_id, tf.int32)),
        "labels": tf.fill([spec.seq_len], tf.constant(IGNORE_LABEL_ID, tf.int32)),
        "puzzle_identifiers": tf.constant(spec.blank_identifier_id, tf.int32),
        "mask": tf.constant(False),
    }
    pad.update({k: tf.zeros(shapes[k], tf.int32) for k in extra_features})
    return read, encode, pad


def _task_rows(ds: tf.data.Dataset, share: Sequence[str], most: int) -> tf.data.Dataset:
    """The rows of `ds` whose `task_name` is in `share`, asserting (in-graph) that they are at most `most`."""
    names = tf.constant(list(share) or [""], tf.string)
    member = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(names, tf.fill([len(names)], int(bool(share)))),
        default_value=0,
    )

    def bounded(i, ex):
        check = tf.debugging.assert_less(
            i,
            tf.constant(most, tf.int64),
            message=f"a task of the eval subset has more rows than its bound (at most {most} on this host)",
        )
        with tf.control_dependencies([check]):
            return {k: tf.identity(v) for k, v in ex.items()}

    return ds.filter(lambda ex: member.lookup(ex["task_name"]) > 0).enumerate().map(bounded)


def distribute_eval(
    strategy,
    spec,
    global_batch_size,
    subset_size=-1,
    extra_features=(),
    task_names=None,
    options=None,
    tasks=None,
):
    """Distributed eval stream: (distributed dataset, steps); `steps` is the same for every pipeline
    (`tasks`: a task-complete subset, see `make_eval_dataset`)."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"eval global_batch_size={global_batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    steps = []

    def fn(ctx):
        ds, n = make_eval_dataset(
            spec, global_batch_size, subset_size, ctx, extra_features, task_names, tasks
        )
        steps.append(n)
        return ds

    dist = strategy.distribute_datasets_from_function(fn, options)
    assert len(set(steps)) == 1, steps  # eval_examples_per_host pads every host to the same count
    return dist, steps[0]
