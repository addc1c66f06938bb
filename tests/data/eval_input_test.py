"""Evaluation stream (trm_tf/data/eval_input.py): every test row once, in order, padded with masked rows to the
same number of batches on every host; ARC features; task-complete subsets are tested in tests/evaluators."""

import numpy as np
import pytest

from tests.testing.pipelines import (
    per_replica_batches,
    pod,
    read_split,
    take,
    task_names,
)
from trm_tf.data import eval_input, records
from trm_tf.data.spec import DatasetSpec
from trm_tf.losses import IGNORE_LABEL_ID

ARC_EXTRA = ("task_id", "test_index", "transform_id", "color_map")


# ---- Evaluation.


def test_eval_dataset_once_in_order_with_masked_padding(spec):
    ds, steps = eval_input.make_eval_dataset(spec, 16)
    assert steps == 3  # 37 examples -> 3 batches of 16
    batches = take(ds, 10)
    assert len(batches) == 3
    assert sorted(batches[0]) == ["inputs", "labels", "mask", "puzzle_identifiers"]
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.dtype == bool and mask.sum() == 37 and not mask[37:].any()
    inputs = np.concatenate([b["inputs"] for b in batches])
    labels = np.concatenate([b["labels"] for b in batches])
    assert inputs.dtype == labels.dtype == np.int32
    assert (inputs[37:] == 0).all() and (labels[37:] == IGNORE_LABEL_ID).all()
    test = read_split(spec, "test")
    np.testing.assert_array_equal(inputs[:37], test["inputs"].astype(np.int32))
    np.testing.assert_array_equal(labels[:37], test["labels"].astype(np.int32))
    sub, sub_steps = eval_input.make_eval_dataset(spec, 16, subset_size=20)
    assert sub_steps == 2
    assert sum(int(b["mask"].sum()) for b in take(sub, 5)) == 20


def test_eval_rows_with_arc_features_once_over_hosts(arc):
    names = sorted(task_names(arc))
    strategy = pod()
    opts = records.input_options("per_replica")
    dist, steps = eval_input.distribute_eval(
        strategy, arc, 8, extra_features=ARC_EXTRA, task_names=names, options=opts
    )
    assert steps == 6  # 44 files dealt to 2 hosts: 22 rows each, in batches of 4
    batches = per_replica_batches(strategy, dist, steps)
    rows = {}
    for step in batches:
        for b in step:
            assert b["color_map"].shape == (4, 10) and b["task_id"].dtype == np.int32
            for j in np.flatnonzero(b["mask"]):
                key = (int(b["puzzle_identifiers"][j]), int(b["test_index"][j]))
                assert key not in rows  # each test row exactly once
                rows[key] = {k: v[j] for k, v in b.items()}
            pad = ~b["mask"]
            assert (b["labels"][pad] == IGNORE_LABEL_ID).all() and (b["task_id"][pad] == 0).all()
    features = ("inputs", "labels", "puzzle_identifier", "task_name", "test_index")
    truth = read_split(arc, "test", features=features + ("transform_id", "color_map"))
    assert len(rows) == arc.num_test_examples == len(truth["inputs"])
    for i in range(len(truth["inputs"])):
        row = rows[(int(truth["puzzle_identifier"][i]), int(truth["test_index"][i]))]
        np.testing.assert_array_equal(row["inputs"], truth["inputs"][i])
        labels = truth["labels"][i].astype(np.int32)
        labels[labels == arc.ignore_label_id] = IGNORE_LABEL_ID
        np.testing.assert_array_equal(row["labels"], labels)
        assert row["task_id"] == names.index(truth["task_name"][i].decode())
        assert row["transform_id"] == truth["transform_id"][i]
        np.testing.assert_array_equal(row["color_map"], truth["color_map"][i])
    with pytest.raises(ValueError, match="task_names"):
        eval_input.make_eval_dataset(arc, 8, extra_features=ARC_EXTRA)


def test_eval_unknown_task_name_maps_to_minus_one(arc):
    ds, _ = eval_input.make_eval_dataset(arc, 8, extra_features=("task_id",), task_names=["x"])
    ids = np.concatenate([b["task_id"][b["mask"]] for b in take(ds, 100)])
    assert len(ids) == arc.num_test_examples and (ids == -1).all()


def test_eval_steps_equal_across_hosts():
    # Files are dealt round-robin; every host pads to the largest host's count.
    spec = DatasetSpec(
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
    assert eval_input.eval_examples_per_host(spec, 2) == 45  # host 0: 20 + 25
    assert eval_input.eval_examples_per_host(spec, 1) == 70
    assert eval_input.eval_examples_per_host(spec, 2, subset_size=30) == 15
    with pytest.raises(ValueError, match="files"):
        eval_input.eval_examples_per_host(spec, 8)
