"""tf.data input pipelines that run on the hosts of a TPU pod: the reference's group sampler for training and
a padded, masked test stream for evaluation.

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

**Reading the train split.** From the split's decoded cache when `trm_tf.data.cache.open_cache` accepts it
(raw arrays, one file per TFRecord file: a start reads bytes instead of parsing every example; "files" reads
the host's own cache files, "groups" filters each file as it is read), else from the TFRecords. Either way
the host logs one line with the number of examples and the seconds it took, and the batches are the same.

**Training** follows the reference sampler. The host's examples are batched into ONE tf.data element (the
host's whole share, held in host memory), whose tensors then feed an infinite index stream: every epoch is a
permutation of the host's groups (base puzzles), drawn with stateless random ops seeded from
(seed, host, epoch); for each group one random puzzle (augmented copy) is chosen and its examples are appended
in random order; epochs are concatenated into one stream and cut into batches, so a puzzle that does not fit in
the rest of a batch continues in the next one. The sampler's tables (examples sorted by (group, puzzle, file
order), puzzle and group boundaries) are computed in-graph from the host's tensors. Documented differences
from the reference: it draws from the unseeded global numpy RNG, and it drops the partial batch at the end of
each "iteration" of eval_interval epochs, while ours continues it into the next epoch.

**Resuming** needs no iterator state: one loader batch is consumed per replica per optimizer step (TRM's ACT
carry discards the examples that land in busy slots, as the reference does), so the position of step s is
s x (replicas per host) batches of the host's stream (s x all replicas of the global stream for "stream");
the sampler replays its cheap index stream up to there, and `start_step=s` yields exactly what a run from 0
yields after s steps.

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
import tensorflow_datasets as tfds

from trm_tf.data import cache as decoded_cache
from trm_tf.data.datasets import DatasetSpec
from trm_tf.losses import IGNORE_LABEL_ID

# Features every builder writes (tfds_builders/*), read for training and evaluation.
CORE_FEATURES = decoded_cache.FEATURES
HOST_SHARDING = ("auto", "groups", "files", "stream")
# Eval feature computed from the string `task_name` (index into the caller's sorted task names).
TASK_ID = "task_id"
# Batch size that puts a host's whole share of a split into one tf.data element (tf.data only reserves
# min(batch, 65536) slots up front, so a huge value costs nothing).
_WHOLE_SPLIT = 1 << 40


def _options() -> tf.data.Options:
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


def _per_host(ctx: tf.distribute.InputContext | None) -> tuple[int, int, int]:
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
    builder = tfds.builder(spec.name, data_dir=spec.data_dir)
    ctx = input_context if input_context and input_context.num_input_pipelines > 1 else None
    return builder.as_dataset(
        split=split,
        shuffle_files=False,
        read_config=tfds.ReadConfig(
            input_context=ctx, try_autocache=False, add_tfds_id=add_tfds_id
        ),
        decoders=tfds.decode.PartialDecoding({k: True for k in features}),
    )


def _whole(ds: tf.data.Dataset) -> tf.data.Dataset:
    """One element holding every example of `ds` ([n, ...] tensors; n = 0 when `ds` is empty)."""
    empty = tf.data.Dataset.from_tensors(
        tf.nest.map_structure(lambda s: tf.zeros([0] + s.shape.as_list(), s.dtype), ds.element_spec)
    )
    return ds.batch(_WHOLE_SPLIT).concatenate(empty).take(1)


def _host_examples(spec, mode, input_context, decoded) -> tf.data.Dataset:
    """One element: this host's training examples ([n, ...] tensors of CORE_FEATURES, plus the cache's
    `rank` when read from `decoded`), and a one-line log of how long reading them took on the host."""
    host, hosts, _ = _per_host(input_context)
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
        ds, source = _whole(ds), "TFRecords"
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


class GroupSampler:
    """The reference's training sampler over one host's examples, as TF ops.

    `group` and `puzzle_index` ([n] int, the host's examples in file order) may be symbolic tensors: the
    pipeline builds the sampler inside a tf.data function from the host's examples, so its tables never
    exist on the client. Per epoch: a stateless-seeded permutation of the groups, one random puzzle per
    group, that puzzle's examples in random order; epochs are concatenated into one continuous stream (see
    module docstring). Every puzzle of a group must have the same number of examples (true for all our
    builders: augmented copies keep the examples of their base puzzle), which makes an epoch a fixed number
    of examples and a resume position pure arithmetic; it is checked when the stream starts (eagerly: at
    construction).
    """

    def __init__(self, group, puzzle_index, seed: int, shard: int, rank=None):
        group = tf.cast(group, tf.int64)
        puzzle = tf.cast(puzzle_index, tf.int64)
        n = tf.size(group, out_type=tf.int64)
        # Examples in file order: as given, or (decoded cache, which stores them file by file) sorted by
        # `rank`, their distinct positions in the order the TFRecords are read.
        by_rank = None
        if rank is not None:
            by_rank = tf.cast(tf.argsort(rank, stable=True), tf.int64)
            group, puzzle = tf.gather(group, by_rank), tf.gather(puzzle, by_rank)
        # Sort examples by (group, puzzle, file order) so that puzzles and groups are contiguous ranges:
        # both are int32, so one int64 key orders them lexicographically, and the sort is stable.
        key = group * (1 << 32) + (puzzle + (1 << 31))
        order = tf.cast(tf.argsort(key, stable=True), tf.int64)
        g, p = tf.gather(group, order), tf.gather(puzzle, order)
        if by_rank is not None:
            order = tf.gather(by_rank, order)  # indices into the examples as given
        new_puzzle = tf.concat([[True], (p[1:] != p[:-1]) | (g[1:] != g[:-1])], 0)
        puzzle_start = tf.where(new_puzzle)[:, 0]
        bounds = tf.concat([puzzle_start, [n]], 0)
        puzzle_size = bounds[1:] - bounds[:-1]
        puzzle_group = tf.gather(g, puzzle_start)
        new_group = tf.concat([[True], puzzle_group[1:] != puzzle_group[:-1]], 0)
        group_start = tf.where(new_group)[:, 0]
        num_puzzles = tf.size(puzzle_start, out_type=tf.int64)
        bounds = tf.concat([group_start, [num_puzzles]], 0)
        group_size = bounds[1:] - bounds[:-1]
        first = tf.gather(puzzle_size, group_start)
        uniform = tf.reduce_all(puzzle_size == tf.repeat(first, group_size))
        message = "puzzles of one group have different numbers of examples"
        if tf.executing_eagerly():
            if not bool(uniform):
                raise ValueError(message)
        else:
            with tf.control_dependencies([tf.debugging.Assert(uniform, [message])]):
                order = tf.identity(order)
        self.num_groups = tf.size(group_start, out_type=tf.int64)
        self.examples_per_epoch = tf.reduce_sum(first)
        self.seed, self.shard = int(seed), int(shard)
        self._t = {
            "order": order,
            "puzzle_start": puzzle_start,
            "puzzle_size": puzzle_size,
            "group_start": group_start,
            "group_size": group_size,
        }

    def epoch_indices(self, epoch) -> tf.Tensor:
        """Example indices (into the host's examples) of one epoch, [examples_per_epoch] int64."""
        t = self._t
        key = tf.stack(
            [tf.constant(self.seed * 1_000_003 + self.shard, tf.int64), tf.cast(epoch, tf.int64)]
        )
        groups = tf.argsort(tf.random.stateless_uniform([self.num_groups], seed=key))
        u = tf.random.stateless_uniform([self.num_groups], seed=key + tf.constant([1, 0], tf.int64))
        size = tf.gather(t["group_size"], groups)
        choice = tf.minimum(tf.cast(u * tf.cast(size, tf.float32), tf.int64), size - 1)
        puzzles = tf.gather(t["group_start"], groups) + choice
        starts = tf.gather(t["puzzle_start"], puzzles)
        sizes = tf.gather(t["puzzle_size"], puzzles)
        ex = tf.ragged.range(starts, starts + sizes).flat_values
        row = tf.repeat(tf.range(tf.size(puzzles, out_type=tf.int64)), sizes)
        # Random order within each puzzle: sort by (puzzle position, random key in [0, 1)). One-example
        # puzzles keep their order whatever the draw.
        r = tf.random.stateless_uniform(
            tf.shape(ex), seed=key + tf.constant([2, 0], tf.int64), dtype=tf.float64
        )
        ex = tf.gather(ex, tf.argsort(tf.cast(row, tf.float64) + r, stable=True))
        return tf.gather(t["order"], ex)

    def index_dataset(self, batch_size: int, start_batch=0) -> tf.data.Dataset:
        """Infinite dataset of [batch_size] index batches, positioned at batch `start_batch`."""
        start = tf.cast(start_batch, tf.int64) * batch_size
        epoch = start // self.examples_per_epoch
        offset = start % self.examples_per_epoch
        ds = tf.data.Dataset.range(epoch, 2**62).flat_map(
            lambda e: tf.data.Dataset.from_tensor_slices(self.epoch_indices(e))
        )
        return ds.skip(offset).batch(batch_size, drop_remainder=True)


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
    host, hosts, local_replicas = _per_host(input_context)
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
    if mode == "stream":
        # Batch i of the global stream feeds replica i % R; this pipeline keeps its replicas' batches.
        shard, num_replicas = 0, hosts * local_replicas
        first_batch = start_step * num_replicas
    else:
        shard, first_batch = host, start_step * local_replicas
    ignore = spec.ignore_label_id

    def stream(data):
        n = tf.shape(data["group"], out_type=tf.int64)[0]
        enough = tf.debugging.assert_greater_equal(
            n,
            tf.constant(batch, tf.int64),
            message=f"training examples on this host are fewer than one batch of {batch}",
        )
        with tf.control_dependencies([enough]):
            group = tf.identity(data["group"])
        sampler = GroupSampler(
            group, data["puzzle_index"], seed, shard, data.get(decoded_cache.RANK)
        )

        def gather(index):
            lab = tf.cast(tf.gather(data["labels"], index), tf.int32)
            return {
                "inputs": tf.cast(tf.gather(data["inputs"], index), tf.int32),
                "labels": tf.where(lab == ignore, IGNORE_LABEL_ID, lab),
                "puzzle_identifiers": tf.cast(
                    tf.gather(data["puzzle_identifier"], index), tf.int32
                ),
            }

        index = sampler.index_dataset(batch, first_batch)
        if mode == "stream":
            index = index.enumerate(first_batch).filter(
                lambda i, _: (i % num_replicas) // local_replicas == host
            )
            index = index.map(lambda _, idx: idx)
        return index.map(gather)

    ds = ds.flat_map(stream)
    return ds.prefetch(prefetch).with_options(_options())


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
    host, hosts, local_replicas = _per_host(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    per_host = eval_examples_per_host(spec, hosts, subset_size, tasks)
    host_batch = batch * local_replicas
    steps = max(1, math.ceil(per_host / host_batch))
    padded = steps * host_batch

    info = tfds.builder(spec.name, data_dir=spec.data_dir).info.features
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
    if tasks is None:
        ds = read_records(spec, "test", read, input_context).take(per_host)
    else:
        read = read if "task_name" in read else read + ("task_name",)
        share = eval_task_shares(tasks, hosts)[host]
        ds = _task_rows(read_records(spec, "test", read), share, per_host)
    ds = ds.map(encode)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat()).take(padded)
    ds = ds.batch(batch, drop_remainder=True)
    return ds.prefetch(2).with_options(_options()), steps


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
    """Distributed training stream (`distribute_datasets_from_function`; `options` from `input_options`).

    The decoded cache is validated once here, not once per host pipeline (each check stats every file)."""
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
