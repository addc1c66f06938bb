"""The reference's training sampler over one host's examples, as TF ops.

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
"""

from __future__ import annotations

import tensorflow as tf


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
