"""tf.data input pipelines: the reference's group sampler for training and a padded, masked test stream.

Each host reads only its own TFRecord files (`tfds.ReadConfig(input_context=...)`) into host memory (the
largest split, ARC-AGI with 1000 augmentations, is about 1 GB per host in total), then:

* **Training** follows the reference sampler (TRM_SPEC §4.5): every epoch is a seeded permutation of the
  host's groups (base puzzles); for each group one random puzzle (augmented copy) is chosen and its examples are
  appended in random order; a puzzle that does not fit in the rest of a batch contributes only the examples that
  fit. Documented differences: the reference draws from the unseeded global numpy RNG (ours is seeded from
  (seed, host, epoch)), and it drops the partial batch at the end of each "iteration" of eval_interval epochs,
  while ours continues it into the next epoch. The stream is infinite.
* **Resuming** needs no iterator state: one loader batch is consumed per replica per optimizer step (TRM's ACT
  carry discards the examples that land in busy slots, as the reference does), so the position of step s is
  s x (replicas per host) batches; the sampler replays its cheap index stream up to there.
* **Evaluation** yields every test example of the host exactly once, in file order, padded with masked rows
  (inputs = pad, labels = ignore, mask False) to the same number of batches on every host, so that collective
  ops in the eval step stay in lockstep across hosts.

Batches are dicts of int32 tensors: `inputs` [B, S], `labels` [B, S] (ignore -> -100), `puzzle_identifiers`
[B], plus `mask` (bool [B]) for evaluation; shapes are static (drop_remainder / padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from trm_tf.data.datasets import DatasetSpec
from trm_tf.losses import IGNORE_LABEL_ID

# Features every builder writes (tfds_builders/*), read for training and evaluation.
CORE_FEATURES = ("inputs", "labels", "puzzle_identifier", "puzzle_index", "group")


def _options() -> tf.data.Options:
    opts = tf.data.Options()
    opts.autotune.enabled = False  # Autotune stalls short runs for seconds (TF_ENV gotcha 1).
    opts.deterministic = True
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return opts


def read_split(
    spec: DatasetSpec,
    split: str,
    input_context: tf.distribute.InputContext | None = None,
    features: Sequence[str] = CORE_FEATURES,
    read_batch: int = 16384,
) -> dict[str, np.ndarray]:
    """Reads this host's files of `split` into numpy arrays, in file order."""
    builder = tfds.builder(spec.name, data_dir=spec.data_dir)
    ctx = input_context if input_context and input_context.num_input_pipelines > 1 else None
    ds = builder.as_dataset(
        split=split,
        shuffle_files=False,
        read_config=tfds.ReadConfig(input_context=ctx, try_autocache=False),
    )
    ds = ds.map(lambda ex: {k: ex[k] for k in features}).batch(read_batch).with_options(_options())
    parts: dict[str, list[np.ndarray]] = {k: [] for k in features}
    for batch in ds.as_numpy_iterator():
        for k in features:
            parts[k].append(batch[k])
    if not parts[features[0]]:
        raise ValueError(f"{spec.name} split {split!r} has no examples for this host")
    return {k: np.concatenate(v) for k, v in parts.items()}


def encode_batch(arrays: dict[str, np.ndarray], index: np.ndarray, spec: DatasetSpec) -> dict:
    """Gathers rows and converts them to the model's int32 batch (ignore label -> -100), in numpy."""
    labels = arrays["labels"][index].astype(np.int32)
    labels[labels == spec.ignore_label_id] = IGNORE_LABEL_ID
    return {
        "inputs": arrays["inputs"][index].astype(np.int32),
        "labels": labels,
        "puzzle_identifiers": arrays["puzzle_identifier"][index].astype(np.int32),
    }


class GroupSampler:
    """The reference's training sampler over one host's examples, as tf.data ops.

    Pure TF ops (no Python generator), so the pipeline also runs on the remote hosts of a TPU pod.
    Per epoch: a stateless-seeded permutation of the groups, one random puzzle per group, that puzzle's
    examples in random order; epochs are concatenated into one continuous stream (see module docstring).
    Every puzzle of a group must have the same number of examples (true for all our builders: augmented
    copies keep the examples of their base puzzle), which makes an epoch a fixed number of examples and a
    resume position pure arithmetic.
    """

    def __init__(self, group: np.ndarray, puzzle_index: np.ndarray, seed: int, shard: int):
        n = len(group)
        # Sort examples by (group, puzzle, file order) so that puzzles and groups are contiguous ranges.
        order = np.lexsort((np.arange(n), puzzle_index, group))
        g, p = group[order], puzzle_index[order]
        new_puzzle = np.r_[True, (p[1:] != p[:-1]) | (g[1:] != g[:-1])]
        puzzle_start = np.flatnonzero(new_puzzle)
        puzzle_size = np.diff(np.r_[puzzle_start, n])
        puzzle_group = g[puzzle_start]
        group_start = np.flatnonzero(np.r_[True, puzzle_group[1:] != puzzle_group[:-1]])
        group_size = np.diff(np.r_[group_start, len(puzzle_start)])
        first = puzzle_size[group_start]
        if np.any(puzzle_size != np.repeat(first, group_size)):
            raise ValueError("puzzles of one group have different numbers of examples")
        self.num_groups = len(group_start)
        self.examples_per_epoch = int(first.sum())
        self.max_puzzle_size = int(puzzle_size.max())
        self.seed, self.shard = int(seed), int(shard)
        self._t = {
            "order": tf.constant(order, tf.int64),
            "puzzle_start": tf.constant(puzzle_start, tf.int64),
            "puzzle_size": tf.constant(puzzle_size, tf.int64),
            "group_start": tf.constant(group_start, tf.int64),
            "group_size": tf.constant(group_size, tf.int64),
        }

    def epoch_indices(self, epoch) -> tf.Tensor:
        """Example indices (into the host arrays) of one epoch, [examples_per_epoch] int64."""
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
        if self.max_puzzle_size == 1:
            ex = starts
        else:
            sizes = tf.gather(t["puzzle_size"], puzzles)
            ex = tf.ragged.range(starts, starts + sizes).flat_values
            row = tf.repeat(tf.range(tf.size(puzzles, out_type=tf.int64)), sizes)
            # Random order within each puzzle: sort by (puzzle position, random key).
            r = tf.random.stateless_uniform(
                tf.shape(ex), seed=key + tf.constant([2, 0], tf.int64), dtype=tf.float64
            )
            ex = tf.gather(ex, tf.argsort(tf.cast(row, tf.float64) + r, stable=True))
        return tf.gather(t["order"], ex)

    def index_dataset(self, batch_size: int, start_batch: int = 0) -> tf.data.Dataset:
        """Infinite dataset of [batch_size] index batches, positioned at batch `start_batch`."""
        epoch, offset = divmod(start_batch * batch_size, self.examples_per_epoch)
        ds = tf.data.Dataset.range(epoch, 2**62).flat_map(
            lambda e: tf.data.Dataset.from_tensor_slices(self.epoch_indices(e))
        )
        return ds.skip(offset).batch(batch_size, drop_remainder=True)


def _per_host(ctx: tf.distribute.InputContext | None) -> tuple[int, int, int]:
    """(host index, number of hosts, replicas fed by this host's pipeline)."""
    if ctx is None:
        return 0, 1, 1
    return (
        ctx.input_pipeline_id,
        ctx.num_input_pipelines,
        ctx.num_replicas_in_sync // ctx.num_input_pipelines,
    )


def make_train_dataset(
    spec: DatasetSpec,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    prefetch: int = 4,
    host_sharding: str = "files",
) -> tf.data.Dataset:
    """The infinite training stream of per-replica batches for this host, positioned at `start_step`.

    `host_sharding`: "files" (default) — each host reads its own TFRecord files and samples its own groups
    (scales to pods; the stream depends on the number of hosts); "stream" — every host reads all files and
    keeps its replicas' batches of the one global stream, so any topology sees exactly the batches of a
    single-device run (for datasets that fit every host, e.g. Sudoku and Maze).

    The host's examples are held in memory as tensors of the dataset graph (a TPU pod sends that graph to
    each host, so a host's share must stay below TF's 2 GB graph limit: fine for every paper dataset on
    4+ hosts, and for Sudoku/Maze anywhere).
    """
    host, _, local_replicas = _per_host(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    if host_sharding not in ("files", "stream"):
        raise ValueError(f"host_sharding must be 'files' or 'stream', got {host_sharding!r}")
    by_stream = host_sharding == "stream" and input_context is not None
    if by_stream:
        host, num_replicas = 0, input_context.num_replicas_in_sync
        first_replica = input_context.input_pipeline_id * local_replicas
    arrays = read_split(spec, "train", None if by_stream else input_context)
    if len(arrays["inputs"]) < batch:
        raise ValueError(
            f"{len(arrays['inputs'])} training examples on this host, fewer than one batch"
        )
    sampler = GroupSampler(arrays["group"], arrays["puzzle_index"], seed, host)
    inputs = tf.constant(arrays["inputs"])
    labels = tf.constant(arrays["labels"])
    ids = tf.constant(arrays["puzzle_identifier"].astype(np.int32))
    ignore = spec.ignore_label_id

    def gather(index):
        lab = tf.cast(tf.gather(labels, index), tf.int32)
        return {
            "inputs": tf.cast(tf.gather(inputs, index), tf.int32),
            "labels": tf.where(lab == ignore, IGNORE_LABEL_ID, lab),
            "puzzle_identifiers": tf.gather(ids, index),
        }

    if by_stream:
        # Batch i of the global stream feeds replica i % R; keep this host's replicas' batches.
        ds = sampler.index_dataset(batch, start_step * num_replicas).enumerate()
        ds = ds.filter(
            lambda i, _: (i % num_replicas) // local_replicas == first_replica // local_replicas
        ).map(lambda _, index: gather(index))
    else:
        ds = sampler.index_dataset(batch, start_step * local_replicas).map(gather)
    return ds.prefetch(prefetch).with_options(_options())


def eval_examples_per_host(spec: DatasetSpec, num_hosts: int, subset_size: int = -1) -> int:
    """Largest number of test examples any host reads (files are dealt to hosts round-robin)."""
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
) -> tuple[tf.data.Dataset, int, dict[str, np.ndarray]]:
    """Test examples of this host once, in order, padded+masked.

    Returns (dataset, steps, host_features): `steps` (the number of global eval batches) is the same on every
    host; each batch carries `index` (row of this host's examples) so that `host_features` (the
    `extra_features`, e.g. ARC task names, which cannot travel to a TPU) can be looked up on the host.
    `subset_size` > 0 keeps the first ceil(subset_size / hosts) examples of each host (a fixed subset).
    """
    _, hosts, local_replicas = _per_host(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    per_host = eval_examples_per_host(spec, hosts, subset_size)
    host_batch = batch * local_replicas
    steps = max(1, math.ceil(per_host / host_batch))
    padded = steps * host_batch

    arrays = read_split(spec, "test", input_context, tuple(CORE_FEATURES) + tuple(extra_features))
    n = min(len(arrays["inputs"]), per_host)
    out = encode_batch(arrays, np.arange(n), spec)
    pad = padded - n
    fills = {"inputs": spec.pad_id, "labels": IGNORE_LABEL_ID, "puzzle_identifiers": 0}
    fills["puzzle_identifiers"] = spec.blank_identifier_id
    for k, v in out.items():
        out[k] = np.concatenate([v, np.full((pad,) + v.shape[1:], fills[k], dtype=v.dtype)])
    out["mask"] = np.arange(padded) < n
    out["index"] = np.arange(padded, dtype=np.int32)
    host_features = {k: arrays[k][:n] for k in extra_features}
    ds = tf.data.Dataset.from_tensor_slices(out).batch(batch, drop_remainder=True)
    return ds.prefetch(2).with_options(_options()), steps, host_features


def distribute_train(
    strategy, spec, global_batch_size, seed, start_step=0, prefetch=4, host_sharding="files"
):
    """Distributed training stream (`distribute_datasets_from_function`, one pipeline per host)."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )

    def fn(ctx):
        return make_train_dataset(
            spec, global_batch_size, seed, start_step, ctx, prefetch, host_sharding
        )

    return strategy.distribute_datasets_from_function(fn)


def distribute_eval(strategy, spec, global_batch_size, subset_size=-1, extra_features=()):
    """Distributed eval stream: (distributed dataset, steps, this host's extra features)."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"eval global_batch_size={global_batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    made = []

    def fn(ctx):
        ds, steps, host_features = make_eval_dataset(
            spec, global_batch_size, subset_size, ctx, extra_features
        )
        made.append((steps, host_features))
        return ds

    dist = strategy.distribute_datasets_from_function(fn)
    return dist, made[0][0], made[0][1]
