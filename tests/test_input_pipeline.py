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


def test_sampler_draws_each_group_once_per_epoch():
    # 5 groups with 1..5 single-example puzzles each (augmented copies), puzzles numbered globally.
    group = np.repeat(np.arange(5), np.arange(1, 6))
    puzzle = np.arange(len(group))
    s = input_pipeline.GroupSampler(group, puzzle, batch_size=5, seed=3, shard=0)
    it = s.index_batches()
    for _ in range(4):  # batch == groups: one batch per epoch
        idx = next(it)
        assert sorted(group[idx]) == [0, 1, 2, 3, 4]
    # Seeded: same stream again; a different seed differs.
    a = [next(s.index_batches()) for _ in range(1)]
    b = [next(input_pipeline.GroupSampler(group, puzzle, 5, 3, 0).index_batches())]
    np.testing.assert_array_equal(a, b)
    draws = np.stack(
        [
            next(input_pipeline.GroupSampler(group, puzzle, 5, k, 0).index_batches())
            for k in range(30)
        ]
    )
    assert len({tuple(d) for d in draws}) > 20  # seeds give different variants and orders


@pytest.mark.parametrize("sizes", [[1] * 12, [3, 1, 4, 2, 2, 5, 1, 3]])
def test_sampler_resume_position_matches_uninterrupted_stream(sizes):
    # Puzzles of several examples exercise the batch-boundary truncation path.
    puzzle = np.repeat(np.arange(len(sizes)), sizes)
    group = puzzle // 2
    s = input_pipeline.GroupSampler(group, puzzle, batch_size=4, seed=0, shard=1)
    full = [b for _, b in zip(range(25), s.index_batches())]
    resumed = [b for _, b in zip(range(15), s.index_batches(start_batch=10))]
    np.testing.assert_array_equal(np.stack(full[10:]), np.stack(resumed))
    assert all(len(b) == 4 for b in full)


def test_truncated_puzzle_takes_only_what_fits():
    puzzle = np.repeat(np.arange(3), [3, 3, 3])
    s = input_pipeline.GroupSampler(puzzle, puzzle, batch_size=4, seed=0, shard=0)
    first = next(s.index_batches())
    # 3 examples of one puzzle + 1 of the next; the rest of that puzzle is dropped (reference rule).
    counts = np.bincount(puzzle[first], minlength=3)
    assert sorted(counts) == [0, 1, 3]


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
    s = input_pipeline.GroupSampler(arrays["group"], arrays["puzzle_index"], 40, seed=1, shard=0)
    it = s.index_batches()
    for _ in range(3):
        idx = next(it)
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
