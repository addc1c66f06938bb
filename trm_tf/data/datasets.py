"""Locating and describing the TFDS datasets built by `tfds_builders/`, and building them on request.

Training reads the generated TFRecords with `tfds.builder(name, data_dir=...)`, which needs no builder code,
or their decoded cache (`trm_tf.data.cache`, written by every build); only `build_dataset` (the
quickstart's build-if-missing, `python -m trm_tf.data.prepare`) and `dataset_shapes` import a builder.

The builders are the folders of `tfds_builders/` (`KNOWN_BUILDERS`, found there, not listed): a folder
`<name>/` holding `<name>_dataset_builder.py` is the TFDS dataset `<name>`. Each builder module also says,
in `shapes(config)`, the sequence length, vocabulary and puzzle identifiers a build of a config writes, so
a config's memory estimate needs neither the built dataset nor a table kept here.

A process makes one `tfds.builder` per dataset (`tfds_builder`): making one reads the dataset's metadata
files (about eight storage calls, each a round trip on gs://), so the spec, the cache check and every host
pipeline share it.
"""

from __future__ import annotations

import functools
import importlib
import os
import pathlib
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

import tfds_builders
from trm_tf.data.spec import DatasetSpec


def discover_builders(root: str | os.PathLike) -> tuple[str, ...]:
    """The builder folders under `root`: `<name>/` holding `<name>_dataset_builder.py`, sorted."""
    return tuple(
        sorted(
            p.name
            for p in pathlib.Path(root).iterdir()
            if (p / f"{p.name}_dataset_builder.py").is_file()
        )
    )


# Builders that live in this repository (folder name under tfds_builders/ == TFDS dataset name).
KNOWN_BUILDERS = discover_builders(os.path.dirname(tfds_builders.__file__))


class DatasetMissingError(FileNotFoundError):
    """The requested dataset has not been built in `data_dir`; the message says how to build it."""


class DecodedCacheMissingError(DatasetMissingError):
    """A launch on remote TPU hosts found no valid decoded cache (`trm_tf.data.cache.require_cache`); the
    message names the command that writes it."""


@functools.cache
def tfds_builder(name: str, data_dir: str):
    """The process's one `tfds.builder(name, data_dir=data_dir)` (read-only: reading needs no builder
    code); `build_dataset` forgets the builders of the dataset it builds."""
    return tfds.builder(name, data_dir=expand_dir(data_dir))


def expand_dir(path: str) -> str:
    """Expands `~` for local paths; leaves gs:// untouched."""
    return path if "://" in path else os.path.expanduser(path)


def build_command(name: str, data_dir: str, manual_dir: str = "") -> str:
    """The exact command that builds `name` ("dataset/config") into `data_dir`."""
    dataset, _, config = name.partition("/")
    cmd = f"tfds build tfds_builders/{dataset} --config={config} --data_dir={data_dir}"
    if manual_dir or not config.startswith("generated"):
        cmd += f" --manual_dir={manual_dir or 'DIR_WITH_SOURCE_FILES'}"
    return cmd + f"\n  (or: python -m trm_tf.data.prepare --dataset={name} --data_dir={data_dir})"


def _split_value(value: Any, split: str) -> Any:
    """Metadata values may be given per split ({"train": x, "test": y}) or once for all splits."""
    return value[split] if isinstance(value, dict) else value


def load_spec(name: str, data_dir: str) -> DatasetSpec:
    """Reads the metadata of a built dataset, or raises DatasetMissingError with the build command."""
    data_dir = expand_dir(data_dir)
    try:
        info = tfds_builder(name, data_dir).info
        splits = info.splits
        n_train, n_test = splits["train"].num_examples, splits["test"].num_examples
    except (
        Exception
    ) as e:  # TFDS raises several types (DatasetNotFoundError, KeyError, AssertionError).
        raise DatasetMissingError(
            f"Dataset {name!r} is not built in {data_dir} ({type(e).__name__}). Build it with:\n  "
            + build_command(name, data_dir)
        ) from e
    if n_train == 0 and n_test == 0:
        raise DatasetMissingError(f"Dataset {name!r} in {data_dir} is empty; rebuild it.")
    md = dict(info.metadata or {})
    required = ("seq_len", "vocab_size", "num_puzzle_identifiers")
    missing = [k for k in required if k not in md]
    if missing:
        raise ValueError(f"Dataset {name!r} in {data_dir} has no metadata {missing}; rebuild it.")
    return DatasetSpec(
        name=name,
        data_dir=data_dir,
        seq_len=int(md["seq_len"]),
        vocab_size=int(md["vocab_size"]),
        num_puzzle_identifiers=int(md["num_puzzle_identifiers"]),
        pad_id=int(md.get("pad_id", 0)),
        ignore_label_id=int(md.get("ignore_label_id", 0)),
        blank_identifier_id=int(md.get("blank_identifier_id", 0)),
        total_groups=int(_split_value(md.get("total_groups", n_train), "train")),
        mean_puzzle_examples=float(_split_value(md.get("mean_puzzle_examples", 1.0), "train")),
        num_train_examples=int(n_train),
        num_test_examples=int(n_test),
        test_shard_lengths=tuple(int(x) for x in splits["test"].shard_lengths),
        metadata=md,
    )


def import_builder(dataset: str):
    """Imports `tfds_builders.<dataset>` (registers the builder class with TFDS) and returns the module."""
    if dataset not in KNOWN_BUILDERS:
        raise ValueError(f"Unknown dataset {dataset!r}; this repository builds {KNOWN_BUILDERS}")
    return importlib.import_module(f"tfds_builders.{dataset}.{dataset}_dataset_builder")


def dataset_shapes(name: str) -> tuple[int, int, int]:
    """(seq_len, vocab_size, num_puzzle_identifiers) of "dataset/config" without the built dataset: what
    its builder's `shapes(config)` says a build writes (for the memory estimate of a config whose dataset
    is not built yet: the CLI, the config docstrings, a build-if-missing start).

    Raises:
      KeyError: no repository builder of that name, or its builder knows no figures for that config.
    """
    dataset, _, config = name.partition("/")
    if dataset not in KNOWN_BUILDERS:
        raise KeyError(f"no shapes known for dataset {name!r}: not a builder of tfds_builders/")
    return import_builder(dataset).shapes(config)


def build_dataset(name: str, data_dir: str, manual_dir: str = "") -> DatasetSpec:
    """Builds ("downloads and prepares") `name` into `data_dir` with the repository's builder; the build
    also writes the train split's decoded cache (`tfds_builders.builder_utils.ShardPolicy` calls
    `tfds_builders.decoded_cache.write`), which `trm_tf.data.cache` then validates and reads."""
    dataset, _, config = name.partition("/")
    module = import_builder(dataset)
    data_dir = expand_dir(data_dir)
    logging.info("Building %s into %s ...", name, data_dir)
    builder = module.Builder(config=config or None, data_dir=data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=expand_dir(manual_dir) or None)
    try:
        if not manual_dir and not config.startswith("generated"):
            _require_hosts(_source_urls(module), name)
        builder.download_and_prepare(download_config=download_config)
    except (FileNotFoundError, ConnectionError) as e:
        # No half-built folders left behind: the next attempt starts clean.
        for partial in tf.io.gfile.glob(os.path.join(data_dir, dataset, config, "incomplete.*")):
            tf.io.gfile.rmtree(partial)
        raise DatasetMissingError(f"Building {name} failed: {e}") from e
    tfds_builder.cache_clear()  # a builder made before the build has no splits
    return load_spec(name, data_dir)


def _source_urls(module) -> list[str]:
    """The URLs a downloading builder fetches (Sudoku: URLS, Maze: a per-split template)."""
    urls = getattr(module, "URLS", None)
    if urls:
        return list(urls.values())
    template = getattr(module, "_URL", None)
    return [template.format(s) for s in ("train", "test")] if template else []


def _require_hosts(urls: list[str], name: str, timeout: float = 3.0) -> None:
    """Fails within seconds, naming --manual_dir, when a download host cannot be reached (offline, TFDS
    would retry for minutes and end in a long traceback)."""
    import socket
    from urllib.parse import urlparse

    for url in urls:
        u = urlparse(url)
        try:
            with socket.create_connection((u.hostname, u.port or 443), timeout=timeout):
                pass
        except OSError:
            files = ", ".join(sorted({os.path.basename(x.path) for x in map(urlparse, urls)}))
            raise ConnectionError(
                f"cannot reach {u.hostname} to download {name}'s {files}; put them in a folder and "
                "pass it as --manual_dir"
            ) from None


class DatasetCorruptError(DatasetMissingError):
    """A TFRecord file of a built dataset cannot be read; the message names it and the rebuild command."""


def corrupt_files(spec: DatasetSpec) -> list[str]:
    """The dataset's TFRecord files that cannot be read to the end, or hold fewer records than its
    metadata says (a truncated file reads as a shorter one); run after a read error."""
    info = tfds_builder(spec.name, spec.data_dir).info
    expected = {
        os.path.basename(os.fspath(path)): int(n)
        for split in info.splits.values()
        for path, n in zip(split.filepaths, split.shard_lengths)
    }
    base = tfds_builder(spec.name, spec.data_dir).data_dir
    bad = []
    for path in sorted(tf.io.gfile.glob(os.path.join(base, "*.tfrecord*"))):
        try:
            with tf.device("/job:localhost/replica:0/task:0/device:CPU:0"):  # never a remote host
                count = sum(1 for _ in tf.data.TFRecordDataset(path))
        except tf.errors.DataLossError:
            bad.append(path)
            continue
        if count < expected.get(os.path.basename(path), 0):
            bad.append(path)
    return bad


def is_read_error(error: Exception) -> bool:
    """Whether `error` is a dataset read failure: a corrupt record, or a split that yields fewer examples
    than its metadata (the input pipeline asserts the cardinality the metadata gives)."""
    return isinstance(error, tf.errors.DataLossError) or (
        isinstance(error, tf.errors.FailedPreconditionError) and "expected to contain" in str(error)
    )


def corrupt_error(spec: DatasetSpec, error: Exception) -> DatasetCorruptError:
    """A one-line error naming the unreadable files of `spec` and the command that rebuilds it."""
    bad = corrupt_files(spec)
    where = ", ".join(bad) if bad else f"a file of {spec.name} ({str(error).splitlines()[0]})"
    return DatasetCorruptError(
        f"{where} is corrupt; delete {os.path.join(spec.data_dir, spec.name)} and rebuild: "
        + build_command(spec.name, spec.data_dir).replace("\n", " ")
    )
