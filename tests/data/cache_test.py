"""The decoded array cache: same batches as the TFRecords (fresh and resumed, one host and emulated pods),
validation that falls back to the TFRecords, and a graph that holds file names only."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.tiny_datasets import build_tiny_arc, build_tiny_sudoku
from tfds_builders.builder_utils import CORE_FEATURES
from trm_tf.data import cache, input_pipeline
from trm_tf.data.records import input_options, read_records


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds_cache"))


@pytest.fixture(scope="module")
def sudoku(data_dir):
    spec = build_tiny_sudoku(data_dir)
    cache.write_cache(spec)
    return spec


@pytest.fixture(scope="module")
def arc(data_dir):
    spec = build_tiny_arc(data_dir)
    cache.write_cache(spec)
    return spec


def _take(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


def _assert_same(got, want):
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert sorted(g) == sorted(w)
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def _pod_steps(spec, n, use_cache, **kw):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    opts = input_options("per_replica")
    dist = input_pipeline.distribute_train(strategy, spec, options=opts, use_cache=use_cache, **kw)
    it = iter(dist)
    steps = []
    for _ in range(n):
        local = strategy.experimental_local_results(next(it))
        steps.append([tf.nest.map_structure(lambda t: t.numpy(), r) for r in local])
    return steps


def test_cache_files_hold_the_split(sudoku):
    c = cache.open_cache(sudoku)
    assert c is not None and c.num_examples == sudoku.num_train_examples == 160
    assert len(c.paths) == len(c.examples) > 1  # one cache file per TFRecord file
    assert c.row_bytes == 81 + 81 + 4 + 4 + 4 + 8
    data = _take(cache.load_examples(c), 1)[0]
    assert data["inputs"].shape == (160, 81) and data["inputs"].dtype == np.uint8
    # rank is a permutation: every example has its own position in the TFRecord read order.
    np.testing.assert_array_equal(np.sort(data["rank"]), np.arange(160))
    # Sorted by rank, the cache reproduces the TFRecord stream exactly.
    records = read_records(sudoku, "train", CORE_FEATURES).batch(1000)
    want = _take(records, 1)[0]
    order = np.argsort(data["rank"])
    for k in CORE_FEATURES:
        np.testing.assert_array_equal(data[k][order], want[k], err_msg=k)


@pytest.mark.parametrize("start_step", [0, 7])
def test_cache_batches_equal_tfrecord_batches(sudoku, arc, start_step):
    # ARC puzzles have several examples: the order within a puzzle comes from the cache's rank.
    for spec in (sudoku, arc):
        kw = dict(seed=3, start_step=start_step)
        want = _take(input_pipeline.make_train_dataset(spec, 16, use_cache=False, **kw), 12)
        got = _take(input_pipeline.make_train_dataset(spec, 16, use_cache=True, **kw), 12)
        _assert_same(got, want)
    # A resume from the cache continues the cached run's stream.
    full = _take(input_pipeline.make_train_dataset(arc, 16, seed=3), 10)
    resumed = _take(input_pipeline.make_train_dataset(arc, 16, seed=3, start_step=6), 4)
    _assert_same(resumed, full[6:])


@pytest.mark.parametrize("sharding", ["groups", "files", "stream"])
def test_cache_on_an_emulated_pod(sudoku, arc, sharding):
    spec = arc if sharding == "groups" else sudoku
    kw = dict(global_batch_size=8, seed=2, start_step=3, host_sharding=sharding)
    want = _pod_steps(spec, 6, False, **kw)
    got = _pod_steps(spec, 6, True, **kw)
    for g, w in zip(got, want):
        _assert_same(g, w)


def _cache_file(spec, k=0):
    return cache.open_cache(spec).paths[k]


def _corrupt_size(spec):
    path = _cache_file(spec)
    with open(path, "ab") as f:
        f.write(b"x")
    return lambda: _truncate(path)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 1)


def _remove_file(spec):
    path = _cache_file(spec, 1)
    os.rename(path, path + ".away")
    return lambda: os.rename(path + ".away", path)


def _edit_manifest(key, value):
    def edit(spec):
        path = os.path.join(cache.cache_dir(spec), "train.json")
        original = open(path).read()
        manifest = json.loads(original)
        manifest[key] = value
        open(path, "w").write(json.dumps(manifest))
        return lambda: open(path, "w").write(original)

    return edit


def _garble_manifest(spec):
    path = os.path.join(cache.cache_dir(spec), "train.json")
    original = open(path).read()
    open(path, "w").write(original[: len(original) // 2])
    return lambda: open(path, "w").write(original)


@pytest.mark.parametrize(
    "damage, why",
    [
        (_remove_file, "00001-of-00010.raw is missing"),
        (_edit_manifest("dataset", "sudoku_extreme/pipeline_test/0.9.0"), "dataset differs"),
        (_edit_manifest("examples", [1, 2]), "examples differs"),
        (_edit_manifest("tfrecord_bytes", 12), "tfrecord_bytes differs"),
        (_garble_manifest, "unreadable"),
    ],
)
def test_invalid_cache_is_ignored_with_one_warning(sudoku, caplog, damage, why):
    want = _take(input_pipeline.make_train_dataset(sudoku, 16, seed=1, use_cache=False), 3)
    restore = damage(sudoku)
    cache.forget()  # a start validates once per process; this one starts after the damage
    try:
        with caplog.at_level(logging.INFO, logger="absl"):
            assert cache.open_cache(sudoku) is None
        lines = [r for r in caplog.records if r.getMessage().startswith("data:")]
        assert len(lines) == 1 and lines[0].levelno == logging.WARNING, caplog.text
        assert why in lines[0].getMessage() and "trm_tf.data.cache" in lines[0].getMessage()
        # The TFRecords are read instead: the same batches.
        _assert_same(_take(input_pipeline.make_train_dataset(sudoku, 16, seed=1), 3), want)
    finally:
        restore()
    cache.forget()
    assert cache.open_cache(sudoku) is not None


def test_validation_is_remembered_by_the_process(sudoku):
    cache.forget()
    first = cache.open_cache(sudoku)
    restore = _remove_file(sudoku)
    try:  # the same process does not check again (the in-graph reader guards the files)
        assert cache.open_cache(sudoku) is first
    finally:
        restore()


def test_a_file_changed_after_validation_fails_the_run(sudoku):
    ds = input_pipeline.make_train_dataset(sudoku, 16, seed=0)  # validated now
    restore = _corrupt_size(sudoku)
    try:
        with pytest.raises(tf.errors.InvalidArgumentError, match="changed size"):
            _take(ds, 1)
    finally:
        restore()


def test_missing_cache_is_written_once_and_kept(data_dir, sudoku, caplog):
    path = _cache_file(sudoku)
    before = os.stat(path).st_mtime_ns
    cache.write_cache(sudoku)  # up to date: nothing rewritten
    assert os.stat(path).st_mtime_ns == before
    with caplog.at_level(logging.INFO, logger="absl"):
        cache.write_cache(sudoku, force=True)
    assert os.stat(path).st_mtime_ns != before
    assert any("wrote the train cache" in r.getMessage() for r in caplog.records)
    assert not [f for f in os.listdir(cache.cache_dir(sudoku)) if ".tmp-" in f]


def test_cached_graph_holds_no_examples(arc):
    ds = input_pipeline.make_train_dataset(arc, 16, seed=0)
    assert cache.open_cache(arc) is not None
    size = len(ds._as_serialized_graph().numpy())
    assert size < arc.num_train_examples * 2 * arc.seq_len / 8 and size < 1_000_000, size
