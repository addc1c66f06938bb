"""The decoded array cache of a built split, written by the build itself (`builder_utils.ShardPolicy`).

Every build of a repository builder (`tfds build tfds_builders/<name>`, `python -m trm_tf.data.prepare`,
`Builder(...).download_and_prepare()`) ends by writing the train split's decoded cache, so that no training
launch has to: the reader, its validation and the command that (re)writes a cache live in
`trm_tf.data.cache`; this module holds the layout and the writer (the builders may not import `trm_tf`
beyond `trm_tf.tasks`).

**Layout.** One cache file per TFRecord file, in `<version dir>/decoded_cache/`, named after its TFRecord
file plus `.raw`, holding that file's examples in file order: each feature of
`builder_utils.CORE_FEATURES` (the features training reads) as one contiguous [n, *shape] array of its TFDS
dtype, then `rank` (int64 [n]): each example's position in the order in which
`read_split` yields the whole split (TFDS interleaves the files; the sampler breaks ties between the
examples of one puzzle by that order, so the cache reproduces the TFRecord batches bit for bit). A manifest
`<split>.json`, written last, names the dataset, its version, the features and, per file, the number of
examples, and the split's total TFRecord bytes (all from `dataset_info.json`). The cache lives inside the
dataset's version folder, which TFDS deletes and recreates when it rebuilds a dataset, so a rebuild never
meets an old cache.

**Writing** (`write`): one TFRecord file at a time (memory bounded by the files TFDS reads at once), each
cache file written to a temporary name and renamed, the manifest last; all file I/O through `tf.io.gfile`,
and the TFRecords are decoded on this process's own CPU (`LOCAL_CPU`), never on a remote default device.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tfds_builders import builder_utils

RANK = "rank"  # int64 position of each example in the split's read order
CACHE_DIR = "decoded_cache"
FORMAT_VERSION = 2
SUFFIX = ".raw"
# This process's CPU, even after `tf.config.experimental_connect_to_cluster` made a remote host's device
# the default one (eager tf.data would then stream the whole split over gRPC).
LOCAL_CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # numpy dtype name, e.g. "uint8"
    shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * np.prod(self.shape, dtype=np.int64))


def read_split(
    builder: tfds.core.DatasetBuilder,
    split: str,
    features,
    input_context: tf.distribute.InputContext | None = None,
    add_tfds_id: bool = False,
) -> tf.data.Dataset:
    """`builder`'s `split` in file order (only `features` decoded): how training reads a split and the
    order the cache's `rank` records; this pipeline's files only with an `input_context`."""
    return builder.as_dataset(
        split=split,
        shuffle_files=False,
        read_config=tfds.ReadConfig(
            input_context=input_context, try_autocache=False, add_tfds_id=add_tfds_id
        ),
        decoders=tfds.decode.PartialDecoding({k: True for k in features}),
    )


def cache_dir(builder: tfds.core.DatasetBuilder) -> str:
    """The folder of the cache files (next to the TFRecords)."""
    return os.path.join(os.fspath(builder.data_dir), CACHE_DIR)


def manifest_path(builder: tfds.core.DatasetBuilder, split: str) -> str:
    return os.path.join(cache_dir(builder), f"{split}.json")


def features(info: tfds.core.DatasetInfo) -> tuple[Feature, ...]:
    return tuple(
        Feature(k, np.dtype(info.features[k].np_dtype).name, tuple(info.features[k].shape))
        for k in builder_utils.CORE_FEATURES
    )


def expected(info: tfds.core.DatasetInfo, split: str) -> dict:
    """What a valid manifest of `split` says: all of it from the dataset's own metadata."""
    si = info.splits[split]
    return {
        "format": FORMAT_VERSION,
        "dataset": info.full_name,
        "split": split,
        "features": [dataclasses.asdict(f) | {"shape": list(f.shape)} for f in features(info)],
        "tfrecords": list(si.filenames),
        "examples": [int(n) for n in si.shard_lengths],
        "tfrecord_bytes": int(si.num_bytes),
    }


def read_manifest(builder: tfds.core.DatasetBuilder, split: str) -> tuple[str, dict | None]:
    """(why the manifest is unusable or "", the manifest): one read on a present cache."""
    try:
        with tf.io.gfile.GFile(manifest_path(builder, split)) as f:
            text = f.read()
    except tf.errors.NotFoundError:
        return "missing", None
    try:
        manifest = json.loads(text)
    except ValueError as e:
        return f"unreadable manifest ({type(e).__name__})", None
    for key, want in expected(builder.info, split).items():
        if manifest.get(key) != want:
            return f"{key} differs from the dataset's", None
    return "", manifest


def _atomic_write(path: str, data: bytes | str) -> None:
    """Writes `path` through a temporary name and a rename, so readers never see a partial file."""
    tmp = f"{path}.tmp-{os.getpid()}-{time.time_ns()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _batches_with_file_positions(builder, split: str, files: list[str]):
    """The split in `read_split` order, in numpy batches: the CORE_FEATURES plus `file` (index into `files`)
    and `index` (position in that file), taken from TFDS's own example ids ("<file name>__<index>")."""
    ds = read_split(builder, split, builder_utils.CORE_FEATURES, add_tfds_id=True).batch(1 << 14)

    def split_id(b):
        parts = tf.strings.split(b.pop("tfds_id"), "__").to_tensor()
        return dict(b, name=parts[:, 0], index=tf.strings.to_number(parts[:, 1], tf.int64))

    file_of = {f.encode(): k for k, f in enumerate(files)}
    for b in ds.map(split_id).as_numpy_iterator():
        names, inverse = np.unique(b.pop("name"), return_inverse=True)
        b["file"] = np.array([file_of[n] for n in names])[inverse.reshape(-1)]
        yield b


def _write_files(builder, split: str, files: list[str], examples: list[int]) -> None:
    """One pass over the split: each file's examples are gathered into its own buffers and the file is
    written as soon as all of them have been seen (TFDS reads a few files at a time, so only those are in
    memory), with `rank` = the example's position in the read order."""
    feats = features(builder.info)
    directory = cache_dir(builder)
    buffers, filled, position = {}, [0] * len(files), 0
    for b in _batches_with_file_positions(builder, split, files):
        n = len(b["file"])
        b[RANK] = np.arange(position, position + n, dtype=np.int64)
        position += n
        for k in np.unique(b["file"]):
            rows = b["file"] == k
            if k not in buffers:
                buffers[k] = {
                    f.name: np.zeros((examples[k], *f.shape), f.dtype)
                    for f in feats + (Feature(RANK, "int64", ()),)
                }
            for name, buf in buffers[k].items():
                buf[b["index"][rows]] = b[name][rows]
            filled[k] += int(rows.sum())
            if filled[k] == examples[k]:
                bufs = buffers.pop(k)
                blob = b"".join(
                    bufs[f.name].astype(np.dtype(f.dtype).newbyteorder("<")).tobytes()
                    for f in feats
                )
                _atomic_write(
                    os.path.join(directory, files[k] + SUFFIX),
                    blob + bufs[RANK].astype("<i8").tobytes(),
                )
    if buffers or filled != examples:
        raise ValueError(
            f"{builder.info.full_name} {split}: the TFRecords hold {filled}, not {examples} examples"
        )


def write(builder: tfds.core.DatasetBuilder, split: str = "train", force: bool = False) -> bool:
    """Writes the cache of `builder`'s (built) `split` unless (without `force`) its manifest matches the
    dataset; returns whether it wrote. Costs one decoding pass over the split."""
    if not force and not read_manifest(builder, split)[0]:
        return False
    t0 = time.perf_counter()
    want = expected(builder.info, split)
    files, examples = want["tfrecords"], want["examples"]
    tf.io.gfile.makedirs(cache_dir(builder))
    path = manifest_path(builder, split)
    if tf.io.gfile.exists(path):  # an old manifest must not vouch for half-rewritten files
        tf.io.gfile.remove(path)
    with tf.device(LOCAL_CPU):
        _write_files(builder, split, files, examples)
    _atomic_write(path, json.dumps(want, indent=1))
    logging.info(
        "data: wrote the %s cache of %s (%s examples, %d files) in %.1f s",
        split,
        builder.info.full_name,
        f"{sum(examples):,}",
        len(files),
        time.perf_counter() - t0,
    )
    return True
