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
from collections.abc import Iterator, Sequence

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
    """Gathers rows and converts them to the model's int32 batch (ignore label -> -100)."""
    labels = arrays["labels"][index].astype(np.int32)
    labels[labels == spec.ignore_label_id] = IGNORE_LABEL_ID
    return {
        "inputs": arrays["inputs"][index].astype(np.int32),
        "labels": labels,
        "puzzle_identifiers": arrays["puzzle_identifier"][index].astype(np.int32),
    }


class GroupSampler:
    """The reference's training sampler over one host's examples (see the module docstring)."""

    def __init__(
        self, group: np.ndarray, puzzle_index: np.ndarray, batch_size: int, seed: int, shard: int
    ):
        n = len(group)
        if n < batch_size:
            raise ValueError(
                f"{n} training examples on this host, fewer than one batch ({batch_size})"
            )
        # Sort examples by (group, puzzle, file order) so that puzzles and groups are contiguous ranges.
        self.order = np.lexsort((np.arange(n), puzzle_index, group))
        g, p = group[self.order], puzzle_index[self.order]
        new_puzzle = np.r_[True, (p[1:] != p[:-1]) | (g[1:] != g[:-1])]
        self.puzzle_start = np.flatnonzero(new_puzzle)
        self.puzzle_size = np.diff(np.r_[self.puzzle_start, n])
        puzzle_group = g[self.puzzle_start]
        self.group_start = np.flatnonzero(np.r_[True, puzzle_group[1:] != puzzle_group[:-1]])
        self.group_size = np.diff(np.r_[self.group_start, len(self.puzzle_start)])
        self.num_groups = len(self.group_start)
        self.batch_size = batch_size
        self.seed = seed
        self.shard = shard

    def _epoch_puzzles(self, epoch: int) -> tuple[np.random.Generator, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.shard, epoch])
        groups = rng.permutation(self.num_groups)
        choice = (rng.random(self.num_groups) * self.group_size[groups]).astype(np.int64)
        return rng, self.group_start[groups] + choice

    def index_batches(self, start_batch: int = 0) -> Iterator[np.ndarray]:
        """Yields batches of example indices (into the arrays given to read_split) forever."""
        b, epoch, count = self.batch_size, 0, 0
        if np.all(self.puzzle_size == 1):
            # Fast path (Sudoku, Maze): one example per puzzle, a continuous stream of G per epoch.
            per_epoch = self.num_groups
            epoch, offset = divmod(start_batch * b, per_epoch)
            buf = np.empty(0, np.int64)
            while True:
                _, puzzles = self._epoch_puzzles(epoch)
                buf = np.concatenate([buf, self.order[self.puzzle_start[puzzles]]])
                if offset:
                    buf, offset = buf[offset:], 0
                while len(buf) >= b:
                    yield buf[:b]
                    buf = buf[b:]
                epoch += 1
        # General path (ARC: several examples per puzzle, truncated at batch boundaries).
        current: list[np.ndarray] = []
        filled = 0
        while True:
            rng, puzzles = self._epoch_puzzles(epoch)
            for pz in puzzles:
                take = min(int(self.puzzle_size[pz]), b - filled)
                ex = self.puzzle_start[pz] + rng.permutation(int(self.puzzle_size[pz]))[:take]
                current.append(self.order[ex])
                filled += take
                if filled == b:
                    if count >= start_batch:
                        yield np.concatenate(current)
                    count += 1
                    current, filled = [], 0
            epoch += 1


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
) -> tf.data.Dataset:
    """The infinite training stream of per-replica batches for this host, positioned at `start_step`."""
    host, _, local_replicas = _per_host(input_context)
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size)
        if input_context
        else global_batch_size
    )
    arrays = read_split(spec, "train", input_context)
    sampler = GroupSampler(arrays["group"], arrays["puzzle_index"], batch, seed, host)

    def generator():
        for index in sampler.index_batches(start_step * local_replicas):
            yield encode_batch(arrays, index, spec)

    s = spec.seq_len
    signature = {
        "inputs": tf.TensorSpec([batch, s], tf.int32),
        "labels": tf.TensorSpec([batch, s], tf.int32),
        "puzzle_identifiers": tf.TensorSpec([batch], tf.int32),
    }
    ds = tf.data.Dataset.from_generator(generator, output_signature=signature)
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


def distribute_train(strategy, spec, global_batch_size, seed, start_step=0, prefetch=4):
    """Distributed training stream (`distribute_datasets_from_function`, one pipeline per host)."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )

    def fn(ctx):
        return make_train_dataset(spec, global_batch_size, seed, start_step, ctx, prefetch)

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
