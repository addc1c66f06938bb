"""Input pipeline: the reference sampler, per-replica sharding, resume positions, padded evaluation."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import build_tiny_sudoku
from trm_tf.data import datasets, input_pipeline
from trm_tf.losses import IGNORE_LABEL_ID


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return build_tiny_sudoku(str(tmp_path_factory.mktemp("tfds")))


def _take(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


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


def _batches(sampler, batch, n, start=0):
    return [b.numpy() for b in sampler.index_dataset(batch, start).take(n)]


def test_sampler_draws_each_group_once_per_epoch():
    # 5 groups with 1..5 single-example puzzles each (augmented copies), puzzles numbered globally.
    group = np.repeat(np.arange(5), np.arange(1, 6))
    puzzle = np.arange(len(group))
    s = input_pipeline.GroupSampler(group, puzzle, seed=3, shard=0)
    assert s.examples_per_epoch == 5
    for idx in _batches(s, 5, 4):  # batch == groups: one batch per epoch
        assert sorted(group[idx]) == [0, 1, 2, 3, 4]
    # Seeded: the same stream again; other seeds choose other variants and orders.
    np.testing.assert_array_equal(
        _batches(s, 5, 3), _batches(input_pipeline.GroupSampler(group, puzzle, 3, 0), 5, 3)
    )
    draws = {
        tuple(_batches(input_pipeline.GroupSampler(group, puzzle, k, 0), 5, 1)[0])
        for k in range(30)
    }
    assert len(draws) > 20
    # Every variant of a group is drawn: group 4 has 5 puzzles.
    seen = {i for b in _batches(s, 5, 60) for i in b if group[i] == 4}
    assert seen == set(np.flatnonzero(group == 4))


@pytest.mark.parametrize("sizes", [[1] * 12, [3, 3, 4, 4, 2, 2, 5, 5]])
def test_sampler_resume_position_matches_uninterrupted_stream(sizes):
    puzzle = np.repeat(np.arange(len(sizes)), sizes)
    group = puzzle // 2  # two puzzles (augmented copies) per group, same number of examples
    s = input_pipeline.GroupSampler(group, puzzle, seed=0, shard=1)
    full = _batches(s, 4, 25)
    np.testing.assert_array_equal(np.stack(full[10:]), np.stack(_batches(s, 4, 15, start=10)))


def test_multi_example_puzzles_stay_together_within_an_epoch():
    sizes = [3, 3, 2, 2, 4, 4]
    puzzle = np.repeat(np.arange(6), sizes)
    group = puzzle // 2
    s = input_pipeline.GroupSampler(group, puzzle, seed=5, shard=0)
    assert s.examples_per_epoch == 3 + 2 + 4
    idx = _batches(s, 9, 1)[0]  # exactly one epoch
    assert sorted(group[idx]) == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    # One puzzle per group, all of its examples, contiguous.
    for g in range(3):
        pos = np.flatnonzero(group[idx] == g)
        assert len(set(puzzle[idx[pos]])) == 1 and np.ptp(pos) == len(pos) - 1
    with pytest.raises(ValueError, match="different numbers"):
        input_pipeline.GroupSampler(np.array([0, 0, 0]), np.array([0, 0, 1]), 0, 0)


def test_train_dataset_shapes_labels_and_determinism(spec):
    ds = input_pipeline.make_train_dataset(spec, 16, seed=0)
    batches = _take(ds, 12)  # 12 * 16 = 192 > 160 examples: crosses an epoch
    for b in batches:
        assert b["inputs"].shape == (16, 81) and b["inputs"].dtype == np.int32
        assert b["labels"].shape == (16, 81) and b["puzzle_identifiers"].shape == (16,)
        given = b["inputs"] > 1
        np.testing.assert_array_equal(b["labels"][given], b["inputs"][given])  # givens agree
        assert ((b["labels"] >= 2) & (b["labels"] <= 10)).all()  # Sudoku labels are all valid
    again = _take(input_pipeline.make_train_dataset(spec, 16, seed=0), 12)
    for x, y in zip(batches, again):
        np.testing.assert_array_equal(x["inputs"], y["inputs"])
    # Resume at step 5 continues the same stream.
    resumed = _take(input_pipeline.make_train_dataset(spec, 16, seed=0, start_step=5), 7)
    for x, y in zip(batches[5:], resumed):
        np.testing.assert_array_equal(x["inputs"], y["inputs"])


def test_each_group_once_per_epoch_on_real_data(spec):
    arrays = input_pipeline.read_split(spec, "train")
    s = input_pipeline.GroupSampler(arrays["group"], arrays["puzzle_index"], seed=1, shard=0)
    for idx in _batches(s, 40, 3):
        assert sorted(arrays["group"][idx]) == list(range(40))


def test_mirrored_replicas_split_the_global_batch_in_order(spec):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = input_pipeline.distribute_train(strategy, spec, 16, seed=0)
    single = _take(input_pipeline.make_train_dataset(spec, 16, seed=0), 3)
    it = iter(dist)
    for s in single:
        per_replica = strategy.experimental_local_results(next(it))
        assert [r["inputs"].shape for r in per_replica] == [(8, 81), (8, 81)]
        merged = np.concatenate([r["inputs"].numpy() for r in per_replica])
        np.testing.assert_array_equal(merged, s["inputs"])
    with pytest.raises(ValueError, match="divisible"):
        input_pipeline.distribute_train(strategy, spec, 15, seed=0)


def test_eval_dataset_once_in_order_with_masked_padding(spec):
    ds, steps, _ = input_pipeline.make_eval_dataset(spec, 16)
    assert steps == 3  # 37 examples -> 3 batches of 16
    batches = _take(ds, 10)
    assert len(batches) == 3
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == 37 and not mask[37:].any()
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), np.arange(48))
    inputs = np.concatenate([b["inputs"] for b in batches])
    labels = np.concatenate([b["labels"] for b in batches])
    assert (inputs[37:] == 0).all() and (labels[37:] == IGNORE_LABEL_ID).all()
    test = input_pipeline.read_split(spec, "test")
    np.testing.assert_array_equal(inputs[:37], test["inputs"].astype(np.int32))
    sub, sub_steps, _ = input_pipeline.make_eval_dataset(spec, 16, subset_size=20)
    assert sub_steps == 2
    assert sum(int(b["mask"].sum()) for b in _take(sub, 5)) == 20


def test_eval_steps_equal_across_hosts():
    # Files are dealt round-robin; every host pads to the largest host's count.
    spec = datasets.DatasetSpec(
        name="x",
        data_dir="",
        seq_len=81,
        vocab_size=11,
        num_puzzle_identifiers=1,
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        total_groups=1,
        mean_puzzle_examples=1.0,
        num_train_examples=1,
        num_test_examples=70,
        test_shard_lengths=(20, 10, 25, 15),
        metadata={},
    )
    assert input_pipeline.eval_examples_per_host(spec, 2) == 45  # host 0: 20 + 25
    assert input_pipeline.eval_examples_per_host(spec, 1) == 70
    assert input_pipeline.eval_examples_per_host(spec, 2, subset_size=30) == 15
    with pytest.raises(ValueError, match="files"):
        input_pipeline.eval_examples_per_host(spec, 8)
