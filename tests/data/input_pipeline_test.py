"""Input pipeline: the reference sampler, host sharding, resume positions, padded evaluation, pod emulation.

The training stream is checked against an independent numpy reference of the sampler (below), computed from
the split read directly with TFDS; the pod is emulated with a MirroredStrategy over the two logical CPUs and
one input pipeline per replica (`input_options("per_replica")`), each pipeline playing one host.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.pipelines import (
    per_replica_batches,
    pod,
    read_split,
    take,
    task_names,
)
from trm_tf.data import datasets, eval_input, input_pipeline, records
from trm_tf.data.sampler import GroupSampler
from trm_tf.losses import IGNORE_LABEL_ID

ARC_EXTRA = ("task_id", "test_index", "transform_id", "color_map")


# ---- Independent reference of the training stream (numpy tables, numpy gathers; only the stateless draws
# come from TF, the same ops the pipeline uses), computed from the split read directly with TFDS.


def _ref_epoch(group, puzzle, seed, shard, epoch):
    """One epoch of example indices: the sampler the module docstring describes, in numpy."""
    n = len(group)
    order = np.lexsort((np.arange(n), puzzle, group))
    g, p = group[order], puzzle[order]
    puzzle_start = np.flatnonzero(np.r_[True, (p[1:] != p[:-1]) | (g[1:] != g[:-1])])
    puzzle_size = np.diff(np.r_[puzzle_start, n])
    puzzle_group = g[puzzle_start]
    group_start = np.flatnonzero(np.r_[True, puzzle_group[1:] != puzzle_group[:-1]])
    group_size = np.diff(np.r_[group_start, len(puzzle_start)])
    key = tf.constant([seed * 1_000_003 + shard, epoch], tf.int64)

    def uniform(size, k, dtype=tf.float32):
        return tf.random.stateless_uniform([size], seed=key + [k, 0], dtype=dtype).numpy()

    num_groups = len(group_start)
    groups = np.argsort(uniform(num_groups, 0), kind="stable")
    size = group_size[groups]
    draw = uniform(num_groups, 1) * size.astype(np.float32)
    puzzles = group_start[groups] + np.minimum(draw.astype(np.int64), size - 1)
    starts, sizes = puzzle_start[puzzles], puzzle_size[puzzles]
    ex = np.concatenate([np.arange(s, s + k) for s, k in zip(starts, sizes)])
    row = np.repeat(np.arange(len(puzzles)), sizes).astype(np.float64)
    ex = ex[np.argsort(row + uniform(len(ex), 2, tf.float64), kind="stable")]
    return order[ex]


def _ref_batches(arrays, spec, batch, seed, shard, first, count, keep=lambda i: True):
    """`count` batches from batch `first` of the stream of `batch`-example batches, keeping batch i when
    keep(i); the stream always starts at epoch 0, so a later `first` checks the resume arithmetic."""
    stream, epoch, out, i = np.zeros([0], np.int64), 0, [], first
    while len(out) < count:
        while len(stream) < (i + 1) * batch:
            epoch_idx = _ref_epoch(arrays["group"], arrays["puzzle_index"], seed, shard, epoch)
            stream, epoch = np.r_[stream, epoch_idx], epoch + 1
        if keep(i):
            idx = stream[i * batch : (i + 1) * batch]
            labels = arrays["labels"][idx].astype(np.int32)
            labels[labels == spec.ignore_label_id] = IGNORE_LABEL_ID
            out.append(
                {
                    "inputs": arrays["inputs"][idx].astype(np.int32),
                    "labels": labels,
                    "puzzle_identifiers": arrays["puzzle_identifier"][idx].astype(np.int32),
                }
            )
        i += 1
    return out


def _assert_same_batches(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert sorted(g) == sorted(w)
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def _only_groups(arrays, hosts, host):
    keep = arrays["group"] % hosts == host
    return {k: v[keep] for k, v in arrays.items()}


# ---- Dataset metadata.


def test_spec_reads_metadata_without_builder(spec):
    assert (spec.seq_len, spec.vocab_size, spec.num_puzzle_identifiers) == (81, 11, 1)
    assert spec.total_groups == 40
    assert spec.num_train_examples == 160 and spec.num_test_examples == 37
    assert spec.steps_per_epoch(16) == pytest.approx(40 / 16)


def test_missing_dataset_names_the_build_command(tmp_path):
    with pytest.raises(
        datasets.DatasetMissingError, match="tfds build tfds_builders/sudoku_extreme"
    ):
        datasets.load_spec("sudoku_extreme/generated_easy", str(tmp_path))


# ---- The sampler on hand-made tables (eager).


def _batches(sampler, batch, n, start=0):
    return [b.numpy() for b in sampler.index_dataset(batch, start).take(n)]


@pytest.mark.slow  # 33 seeded samplers, 60 batches from one: about 7 s alone
def test_sampler_draws_each_group_once_per_epoch():
    # 5 groups with 1..5 single-example puzzles each (augmented copies), puzzles numbered globally.
    group = np.repeat(np.arange(5), np.arange(1, 6))
    puzzle = np.arange(len(group))
    s = GroupSampler(group, puzzle, seed=3, shard=0)
    assert int(s.examples_per_epoch) == 5 and int(s.num_groups) == 5
    for idx in _batches(s, 5, 4):  # batch == groups: one batch per epoch
        assert sorted(group[idx]) == [0, 1, 2, 3, 4]
    # Seeded: the same stream again; other seeds choose other variants and orders.
    np.testing.assert_array_equal(
        _batches(s, 5, 3), _batches(GroupSampler(group, puzzle, 3, 0), 5, 3)
    )
    draws = {tuple(_batches(GroupSampler(group, puzzle, k, 0), 5, 1)[0]) for k in range(30)}
    assert len(draws) > 20
    # Every variant of a group is drawn: group 4 has 5 puzzles.
    seen = {i for b in _batches(s, 5, 60) for i in b if group[i] == 4}
    assert seen == set(np.flatnonzero(group == 4))


@pytest.mark.parametrize("sizes", [[1] * 12, [3, 3, 4, 4, 2, 2, 5, 5]])
def test_sampler_matches_reference_and_resumes(sizes):
    rng = np.random.default_rng(0)
    puzzle = np.repeat(np.arange(len(sizes)), sizes)
    group = puzzle // 2  # two puzzles (augmented copies) per group, same number of examples
    perm = rng.permutation(len(puzzle))  # examples in "file order" unlike the sort order
    group, puzzle = group[perm], puzzle[perm] * 7 % 11  # puzzle numbers need not be sorted either
    s = GroupSampler(group, puzzle, seed=4, shard=1)
    full = _batches(s, 4, 25)
    stream = np.concatenate([_ref_epoch(group, puzzle, 4, 1, e) for e in range(20)])
    np.testing.assert_array_equal(np.stack(full), stream[: 25 * 4].reshape(25, 4))
    np.testing.assert_array_equal(np.stack(full[10:]), np.stack(_batches(s, 4, 15, start=10)))


def test_multi_example_puzzles_stay_together_within_an_epoch():
    sizes = [3, 3, 2, 2, 4, 4]
    puzzle = np.repeat(np.arange(6), sizes)
    group = puzzle // 2
    s = GroupSampler(group, puzzle, seed=5, shard=0)
    assert int(s.examples_per_epoch) == 3 + 2 + 4
    idx = _batches(s, 9, 1)[0]  # exactly one epoch
    assert sorted(group[idx]) == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    # One puzzle per group, all of its examples, contiguous.
    for g in range(3):
        pos = np.flatnonzero(group[idx] == g)
        assert len(set(puzzle[idx[pos]])) == 1 and np.ptp(pos) == len(pos) - 1
    with pytest.raises(ValueError, match="different numbers"):
        GroupSampler(np.array([0, 0, 0]), np.array([0, 0, 1]), 0, 0)


# ---- The training stream from the TFRecords.


@pytest.mark.parametrize("start_step", [0, 7])
def test_train_stream_equals_reference_sampler(spec, arc, start_step):
    # 12 batches of 16 cross epoch boundaries on both (Sudoku: 40 examples/epoch; ARC: ~40).
    for s in (spec, arc):
        got = take(input_pipeline.make_train_dataset(s, 16, seed=3, start_step=start_step), 12)
        want = _ref_batches(read_split(s, "train"), s, 16, 3, 0, start_step, 12)
        _assert_same_batches(got, want)


def test_train_dataset_shapes_labels_and_determinism(spec):
    ds = input_pipeline.make_train_dataset(spec, 16, seed=0)
    batches = take(ds, 12)  # 12 * 16 = 192 > 160 examples: crosses an epoch
    for b in batches:
        assert b["inputs"].shape == (16, 81) and b["inputs"].dtype == np.int32
        assert b["labels"].shape == (16, 81) and b["puzzle_identifiers"].shape == (16,)
        given = b["inputs"] > 1
        np.testing.assert_array_equal(b["labels"][given], b["inputs"][given])  # givens agree
        assert ((b["labels"] >= 2) & (b["labels"] <= 10)).all()  # Sudoku labels are all valid
    again = take(input_pipeline.make_train_dataset(spec, 16, seed=0), 12)
    for x, y in zip(batches, again):
        np.testing.assert_array_equal(x["inputs"], y["inputs"])
    # Resume at step 5 continues the same stream.
    resumed = take(input_pipeline.make_train_dataset(spec, 16, seed=0, start_step=5), 7)
    for x, y in zip(batches[5:], resumed):
        np.testing.assert_array_equal(x["inputs"], y["inputs"])


def test_each_group_once_per_epoch_on_real_data(spec):
    arrays = read_split(spec, "train")
    for b in take(input_pipeline.make_train_dataset(spec, 40, seed=1), 3):
        # Sudoku rows are unique: find each row's group by its inputs.
        groups = []
        for row in b["inputs"]:
            hit = np.flatnonzero((arrays["inputs"] == row).all(1))
            assert len(hit) == 1
            groups.append(int(arrays["group"][hit[0]]))
        assert sorted(groups) == list(range(40))


def test_graph_holds_no_examples(arc):
    # Today's split is ~0.8 MB of examples; a graph that embedded them would be at least that big.
    split_bytes = arc.num_train_examples * 2 * arc.seq_len
    train = input_pipeline.make_train_dataset(arc, 16, seed=0)
    names = sorted(task_names(arc))
    ev, _ = eval_input.make_eval_dataset(arc, 16, extra_features=ARC_EXTRA, task_names=names)
    for ds in (train, ev):
        size = len(ds._as_serialized_graph().numpy())
        assert size < split_bytes / 8 and size < 1_000_000, size


def test_too_few_examples_for_one_batch(spec, arc):
    with pytest.raises(ValueError, match="fewer than one batch"):
        input_pipeline.make_train_dataset(spec, 256, seed=0)  # 160 examples in the split
    # A host's own share is only known at run time: of 440 examples, host 1's groups have 187 < 220.
    host1 = tf.distribute.InputContext(2, 1, 2)
    ds = input_pipeline.make_train_dataset(arc, 440, seed=0, input_context=host1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="fewer than one batch"):
        take(ds, 1)
    many = tf.distribute.InputContext(10, 0, 10)
    with pytest.raises(ValueError, match="group per host"):
        input_pipeline.make_train_dataset(arc, 10, seed=0, input_context=many)


def test_group_size_check_runs_in_graph():
    # Through a dataset the tables are symbolic: the check is an in-graph assertion.
    data = tf.data.Dataset.from_tensors((tf.constant([0, 0, 0]), tf.constant([0, 0, 1])))
    ds = data.flat_map(lambda g, p: GroupSampler(g, p, 0, 0).index_dataset(1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="different numbers"):
        take(ds, 1)


def test_mirrored_replicas_split_the_global_batch_in_order(spec):
    strategy = pod()
    dist = input_pipeline.distribute_train(strategy, spec, 16, seed=0)
    single = take(input_pipeline.make_train_dataset(spec, 16, seed=0), 3)
    it = iter(dist)
    for s in single:
        per_replica = strategy.experimental_local_results(next(it))
        assert [r["inputs"].shape for r in per_replica] == [(8, 81), (8, 81)]
        merged = np.concatenate([r["inputs"].numpy() for r in per_replica])
        np.testing.assert_array_equal(merged, s["inputs"])
    with pytest.raises(ValueError, match="divisible"):
        input_pipeline.distribute_train(strategy, spec, 15, seed=0)


# ---- Host sharding, with one pipeline per replica (two emulated hosts).


def test_input_options():
    assert records.input_options("per_host") is None
    opts = records.input_options("per_replica")
    assert opts.experimental_replication_mode == tf.distribute.InputReplicationMode.PER_REPLICA
    with pytest.raises(ValueError, match="per_replica"):
        records.input_options("per_device")


def test_host_sharding_modes(spec, arc):
    assert records.resolve_host_sharding(spec, "auto") == "files"
    assert records.resolve_host_sharding(arc, "auto") == "groups"
    assert records.resolve_host_sharding(arc, "stream") == "stream"
    with pytest.raises(ValueError, match="'groups'"):
        input_pipeline.make_train_dataset(arc, 16, seed=0, host_sharding="files")
    with pytest.raises(ValueError, match="host_sharding"):
        input_pipeline.make_train_dataset(spec, 16, seed=0, host_sharding="hosts")


def test_groups_sharding_keeps_each_group_on_one_host(arc):
    strategy = pod()
    opts = records.input_options("per_replica")
    dist = input_pipeline.distribute_train(strategy, arc, 8, seed=2, start_step=3, options=opts)
    steps = per_replica_batches(strategy, dist, 12)  # > 2 epochs of each host's ~5 groups
    arrays = read_split(arc, "train")
    group_of = dict(zip(arrays["puzzle_identifier"].tolist(), arrays["group"].tolist()))
    seen = []
    for host in (0, 1):
        got = [step[host] for step in steps]
        seen.append({group_of[i] for b in got for i in b["puzzle_identifiers"].tolist()})
        # The host's stream is the reference sampler over its groups, seeded (seed, host), resumed.
        want = _ref_batches(_only_groups(arrays, 2, host), arc, 4, 2, host, 3, 12)
        _assert_same_batches(got, want)
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(arc.total_groups))
    assert seen[0] == {g for g in range(arc.total_groups) if g % 2 == 0}


def test_stream_sharding_reproduces_the_single_host_stream(spec):
    strategy = pod()
    opts = records.input_options("per_replica")
    dist = input_pipeline.distribute_train(
        strategy, spec, 16, seed=1, start_step=2, host_sharding="stream", options=opts
    )
    single = take(input_pipeline.make_train_dataset(spec, 16, seed=1, start_step=2), 6)
    for step, want in zip(per_replica_batches(strategy, dist, 6), single):
        for k in want:
            np.testing.assert_array_equal(np.concatenate([r[k] for r in step]), want[k])


def test_files_sharding_reads_each_hosts_own_files(spec):
    strategy = pod()
    opts = records.input_options("per_replica")
    dist = input_pipeline.distribute_train(
        strategy, spec, 16, seed=1, host_sharding="files", options=opts
    )
    steps = per_replica_batches(strategy, dist, 4)
    for host in (0, 1):
        want = _ref_batches(read_split(spec, "train", host, 2), spec, 8, 1, host, 0, 4)
        _assert_same_batches([s[host] for s in steps], want)
