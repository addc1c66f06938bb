"""What a start costs before its first step: storage calls of the data check (counted), the memory check
before anything touches the data, the decoded cache written by the build (the `tfds build` CLI too), and
the one-line refusal of a launch on remote hosts without it."""

import collections
import contextlib
import dataclasses
import functools
import logging
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils.epath import backend as epath_backend

from configs import quickstart
from tests.testing.tiny_datasets import ARC_DUMMY_DATA, TINY_SUDOKU
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku_builder
from trm_tf import memory, train
from trm_tf.data import cache, datasets, input_pipeline, records

REPO = pathlib.Path(__file__).resolve().parents[2]
GFILE_CALLS = ("exists", "GFile", "listdir", "glob", "stat", "isdir", "makedirs", "rename")
GFILE_CALLS += ("remove", "rmtree", "walk", "copy")
EPATH_CALLS = ("open", "exists", "isdir", "listdir", "glob", "walk", "makedirs", "mkdir", "stat")
EPATH_CALLS += ("rename", "replace", "remove", "rmtree", "copy")
# A start's data check (the dataset's metadata, the cache check, the pipelines of every host) makes at
# most this many storage calls, whatever the number of files: 10 are TFDS's own reads of the metadata
# (the one `tfds.builder`), 2 the cache check (the manifest, a listing of the cache folder).
START_BUDGET = 12


@contextlib.contextmanager
def storage_calls():
    """Counts every `tf.io.gfile` call and every local `etils.epath` call (TFDS reads its metadata
    through epath, which on gs:// goes through tf.io.gfile), by name."""
    counts = collections.Counter()

    def counted(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    with pytest.MonkeyPatch.context() as mp:
        for name in GFILE_CALLS:
            mp.setattr(tf.io.gfile, name, counted(f"gfile.{name}", getattr(tf.io.gfile, name)))
        os_backend = type(epath_backend.os_backend)
        for name in EPATH_CALLS:
            mp.setattr(os_backend, name, counted(f"epath.{name}", getattr(os_backend, name)))
        yield counts


def _build(data_dir, num_shards):
    sudoku_builder.Builder(config=TINY_SUDOKU, data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=num_shards)
    )
    datasets.tfds_builder.cache_clear()
    return f"sudoku_extreme/{TINY_SUDOKU.name}"


def _start(name, data_dir):
    """What a training start does with the data before its first step: the spec, the cache check of
    `train.build`, the distributed pipelines (two emulated hosts)."""
    spec = datasets.load_spec(name, data_dir)
    cache.require_cache(spec, remote_hosts=True)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    opts = records.input_options("per_replica")
    dist = input_pipeline.distribute_train(strategy, spec, 8, seed=0, options=opts)
    return spec, dist


@pytest.mark.parametrize("num_shards", [2, 40])
def test_a_start_makes_a_few_storage_calls_whatever_the_files(tmp_path, num_shards):
    name = _build(str(tmp_path), num_shards)
    datasets.tfds_builder.cache_clear()
    cache.forget()
    with storage_calls() as counts:
        spec, dist = _start(name, str(tmp_path))
    assert len(cache.open_cache(spec).paths) == num_shards
    total = sum(counts.values())
    assert 0 < total <= START_BUDGET, counts
    # The builder is made once: a second start in the same process costs nothing more.
    with storage_calls() as again:
        _start(name, str(tmp_path))
    assert sum(again.values()) == 0, again
    next(iter(dist))  # and the pipelines really read the cache


def test_the_build_writes_the_cache_so_no_launch_does(tmp_path, caplog):
    name = _build(str(tmp_path), 3)
    spec = datasets.load_spec(name, str(tmp_path))
    cache.forget()
    with caplog.at_level(logging.INFO, logger="absl"):
        c = cache.require_cache(spec, remote_hosts=True)
    assert c.num_examples == spec.num_train_examples and len(c.paths) == 3
    assert not [r for r in caplog.records if "wrote" in r.getMessage()]


def test_tfds_build_cli_writes_the_cache(tmp_path):
    # The command the docs give researchers, through the real CLI, on the ARC builder's dummy data.
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "tfds"),
            "build",
            str(REPO / "tfds_builders" / "arc_agi"),
            "--config=arc1_aug10",
            f"--manual_dir={ARC_DUMMY_DATA}",
            f"--data_dir={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    spec = datasets.load_spec("arc_agi/arc1_aug10", str(tmp_path))
    cache.forget()
    c = cache.require_cache(spec, remote_hosts=True)  # present: no refusal, nothing written
    assert c.num_examples == spec.num_train_examples > 0


def _missing_cache(tmp_path):
    name = _build(str(tmp_path), 2)
    spec = datasets.load_spec(name, str(tmp_path))
    tf.io.gfile.rmtree(cache.cache_dir(spec))
    cache.forget()
    return spec


def test_remote_launch_without_cache_refuses_in_one_line(tmp_path):
    spec = _missing_cache(tmp_path)
    with pytest.raises(datasets.DecodedCacheMissingError) as e:
        cache.require_cache(spec, remote_hosts=True)
    message = str(e.value)
    assert "\n" not in message and "missing" in message
    assert f"python -m trm_tf.data.cache --dataset={spec.name} --data_dir={tmp_path}" in message
    assert isinstance(e.value, datasets.DatasetMissingError)  # launch.py: exit 3
    assert not tf.io.gfile.exists(cache.cache_dir(spec))  # nothing written
    # The command it names writes the cache; then the launch goes ahead.
    res = subprocess.run(
        [sys.executable, "-m", "trm_tf.data.cache", f"--dataset={spec.name}"]
        + [f"--data_dir={tmp_path}"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert cache.require_cache(spec, remote_hosts=True).num_examples == spec.num_train_examples


def test_local_launch_without_cache_writes_it_and_says_the_build_should_have(tmp_path, caplog):
    spec = _missing_cache(tmp_path)
    with caplog.at_level(logging.INFO, logger="absl"):
        c = cache.require_cache(spec, remote_hosts=False)
    assert c.num_examples == spec.num_train_examples
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data:")]
    assert any("writing it now (the build writes it" in m for m in lines), lines


def _config(data_dir, **fields):
    config = quickstart.get_config("runlocal")
    config.data.name, config.data.config = "sudoku_extreme", TINY_SUDOKU.name
    config.data.data_dir = data_dir
    for k, v in fields.items():
        section, _, key = k.partition(".")
        setattr(config[section], key, v)
    return config


def _refuse_on_tpu(monkeypatch):
    """Runs train.build's memory check as on a TPU of 1 MiB HBM (CPU runs are never refused)."""
    monkeypatch.setattr(train, "memory_check", functools.partial(train.memory_check, on_tpu=True))


def test_memory_check_refuses_before_the_cache_is_written(tmp_path, monkeypatch):
    spec = _missing_cache(tmp_path)
    _refuse_on_tpu(monkeypatch)
    config = _config(str(tmp_path), **{"runtime.hbm_gib": 2**-20})
    strategy = tf.distribute.get_strategy()
    with pytest.raises(memory.MemoryBudgetError):
        train.build(config, strategy, write_cache=True, remote_hosts=False)
    assert not tf.io.gfile.exists(cache.cache_dir(spec))


def test_memory_check_refuses_before_a_missing_dataset_is_built(tmp_path, monkeypatch):
    _refuse_on_tpu(monkeypatch)
    config = _config(str(tmp_path), **{"runtime.hbm_gib": 2**-20, "data.build_if_missing": True})
    config.data.config = "generated_easy"  # a real config, known to datasets.dataset_shapes
    with pytest.raises(memory.MemoryBudgetError):
        train.build(config, tf.distribute.get_strategy(), write_cache=True, remote_hosts=False)
    assert os.listdir(tmp_path) == []


def test_build_on_one_machine_keeps_the_builds_cache(tmp_path):
    name = _build(str(tmp_path), 2)
    cache.forget()
    config = _config(str(tmp_path))
    assert f"{config.data.name}/{config.data.config}" == name
    spec, *_ = train.build(config, tf.distribute.get_strategy(), write_cache=True)
    assert dataclasses.is_dataclass(spec) and cache.open_cache(spec) is not None
