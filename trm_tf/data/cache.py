r"""A decoded array cache of a TFDS split, so that a run starts in seconds instead of re-parsing TFRecords.

  python -m trm_tf.data.cache --dataset=sudoku_extreme/sub1000_aug1000 --data_dir=gs://BUCKET/tfds

**Why.** Training holds a host's whole share of the train split in memory (see `input_pipeline`). Parsing it
from TFRecords costs about 30 s per million Sudoku examples on one CPU core, on every start and resume, and
minutes for ARC with 1000 augmentations. The cache stores the same examples already decoded, as raw
little-endian arrays, so loading is reading bytes: no parsing, no per-example work.

**Layout.** One cache file per TFRecord file, in `<version dir>/decoded_cache/`, named after its TFRecord
file plus `.raw`, holding that file's examples in file order: each feature of `FEATURES` as one contiguous
[n, *shape] array of its TFDS dtype, then `rank` (int64 [n]): each example's position in the order in which
`records.read_records` yields the whole split (TFDS interleaves the files; the sampler breaks ties
between the examples of one puzzle by that order, so the cache reproduces the TFRecord batches bit for bit).
Per-file caches keep per-host file sharding ("files": a host reads only its own cache files) and bound the
memory of a host that filters ("groups": each file is filtered as soon as it is read). A manifest
`<split>.json`, written last, names the dataset, its version, the features and, per file, the number of
examples and the sizes of the cache file and of its TFRecord file.

**Validation.** `open_cache` (on the client, before any graph is built) accepts a cache only if its manifest
matches the dataset's metadata (name, version, features, files, examples per file) and every cache and
TFRecord file has the recorded size; otherwise it logs one warning line and the pipeline reads the
TFRecords. The in-graph reader asserts each file's size again, so a file replaced after the check fails the
run instead of feeding wrong data.

**In-graph reading** (`load_examples`): `tf.io.read_file` + `tf.io.decode_raw` on the host, so it works on
gs:// and the dataset graph holds file names, never examples (TF graphs are limited to 2 GB).

**Writing** (`write_cache`): at build time (`datasets.build_dataset`, `scripts/build_data.sh`, this module's
command), one TFRecord file at a time (memory bounded by one file), each cache file written to a temporary
name and renamed, the manifest last. All file I/O goes through `tf.io.gfile`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from trm_tf.data.records import CORE_FEATURES, read_records

# The features training reads (every builder writes them), cached in this order.
FEATURES = CORE_FEATURES
RANK = "rank"  # int64 position of each example in the split's read order
CACHE_DIR = "decoded_cache"
FORMAT_VERSION = 1
SUFFIX = ".raw"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # numpy dtype name, e.g. "uint8"
    shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * np.prod(self.shape, dtype=np.int64))


@dataclasses.dataclass(frozen=True)
class DecodedCache:
    """A validated cache of one split: its cache files (TFRecord file order) and their example counts."""

    split: str
    features: tuple[Feature, ...]
    paths: tuple[str, ...]
    examples: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return sum(f.row_bytes for f in self.features) + 8  # + rank

    @property
    def num_examples(self) -> int:
        return sum(self.examples)


def _builder(spec):
    return tfds.builder(spec.name, data_dir=spec.data_dir)


def cache_dir(spec) -> str:
    """The folder of `spec`'s cache files (next to its TFRecords)."""
    return os.path.join(os.fspath(_builder(spec).data_dir), CACHE_DIR)


def _manifest_path(spec, split: str) -> str:
    return os.path.join(cache_dir(spec), f"{split}.json")


def _features(builder) -> tuple[Feature, ...]:
    info = builder.info.features
    return tuple(
        Feature(k, np.dtype(info[k].np_dtype).name, tuple(info[k].shape)) for k in FEATURES
    )


def _expected(builder, split: str) -> dict:
    """What a valid manifest of `split` must say, from the dataset's own metadata."""
    si = builder.info.splits[split]
    return {
        "format": FORMAT_VERSION,
        "dataset": builder.info.full_name,
        "split": split,
        "features": [dataclasses.asdict(f) | {"shape": list(f.shape)} for f in _features(builder)],
        "tfrecords": list(si.filenames),
        "examples": [int(n) for n in si.shard_lengths],
    }


def _sizes(paths: list[str]) -> list[int]:
    """File sizes (-1 when missing), stat'ed in parallel (each stat is a round trip on gs://)."""

    def size(p):
        try:
            return int(tf.io.gfile.stat(p).length)
        except tf.errors.NotFoundError:
            return -1

    with concurrent.futures.ThreadPoolExecutor(min(16, max(1, len(paths)))) as pool:
        return list(pool.map(size, paths))


def _problem(spec, split: str, builder) -> tuple[str, DecodedCache | None]:
    """(why the cache is unusable or "", the cache)."""
    path = _manifest_path(spec, split)
    if not tf.io.gfile.exists(path):
        return "missing", None
    try:
        with tf.io.gfile.GFile(path) as f:
            manifest = json.load(f)
    except (ValueError, tf.errors.OpError) as e:
        return f"unreadable manifest ({type(e).__name__})", None
    expected = _expected(builder, split)
    for key, want in expected.items():
        if manifest.get(key) != want:
            return f"{key} differs from the dataset's", None
    features = _features(builder)
    cache = DecodedCache(
        split=split,
        features=features,
        paths=tuple(os.path.join(cache_dir(spec), f + SUFFIX) for f in expected["tfrecords"]),
        examples=tuple(expected["examples"]),
    )
    base = os.fspath(builder.data_dir)
    records = [os.path.join(base, f) for f in expected["tfrecords"]]
    got = _sizes(list(cache.paths) + records)
    want = [n * cache.row_bytes for n in cache.examples] + manifest.get("tfrecord_bytes", [])
    for p, g, w in zip(list(cache.paths) + records, got, want):
        if g != w:
            return f"{os.path.basename(p)} is {'missing' if g < 0 else f'{g} bytes, not {w}'}", None
    if len(got) != len(want):
        return "tfrecord_bytes incomplete", None
    return "", cache


def open_cache(spec, split: str = "train") -> DecodedCache | None:
    """The split's validated cache, or None after one log line saying why the TFRecords will be read."""
    builder = _builder(spec)
    try:
        why, cache = _problem(spec, split, builder)
    except (KeyError, tf.errors.OpError) as e:  # e.g. no such split, unreachable bucket
        why, cache = f"{type(e).__name__}: {e}", None
    if cache is None:
        command = f"python -m trm_tf.data.cache --dataset={spec.name} --data_dir={spec.data_dir}"
        log = logging.info if why == "missing" else logging.warning
        log(
            "data: %s %s cache %s; reading TFRecords (write it: %s)", spec.name, split, why, command
        )
    return cache


# ---- In-graph reading.


def _decode_file(cache: DecodedCache, path, n, hosts: int, host: int) -> dict:
    """One cache file's examples as [n, ...] tensors (+ rank); with hosts > 1 only groups of `host`."""
    content = tf.io.read_file(path)
    size = tf.cast(n, tf.int64) * cache.row_bytes
    ok = tf.debugging.assert_equal(
        tf.cast(tf.strings.length(content), tf.int64),
        size,
        message="decoded cache file changed size since it was validated",
    )
    out, offset = {}, tf.constant(0, tf.int64)
    with tf.control_dependencies([ok]):
        for f in cache.features + (Feature(RANK, "int64", ()),):
            length = tf.cast(n, tf.int64) * f.row_bytes
            raw = tf.strings.substr(content, offset, length)
            values = tf.io.decode_raw(raw, tf.dtypes.as_dtype(f.dtype), little_endian=True)
            out[f.name] = tf.reshape(values, [-1, *f.shape])
            offset += length
    if hosts > 1:
        keep = out["group"] % hosts == host
        out = {k: tf.boolean_mask(v, keep) for k, v in out.items()}
    return out


def load_examples(cache: DecodedCache, files: slice = slice(None), hosts: int = 1, host: int = 0):
    """A one-element dataset: the examples of `cache.paths[files]` ([n, ...] tensors, file order, plus
    `rank`), keeping only the groups of `host` (`group % hosts == host`) when hosts > 1.

    Files are read in parallel (in order) and concatenated once; peak memory is about twice the kept
    examples plus a few files in flight."""
    paths, examples = list(cache.paths[files]), list(cache.examples[files])
    names = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string, [len(paths)]), tf.constant(examples, tf.int64, [len(paths)]))
    )
    parts = names.map(
        lambda p, n: _decode_file(cache, p, n, hosts, host),
        num_parallel_calls=min(4, len(paths)),
        deterministic=True,
    )
    whole = parts.ragged_batch(len(paths))
    return whole.map(
        lambda d: {k: v.flat_values if hasattr(v, "flat_values") else v for k, v in d.items()}
    )


# ---- Writing (build time).


def _atomic_write(path: str, data: bytes | str) -> None:
    """Writes `path` through a temporary name and a rename, so readers never see a partial file."""
    tmp = f"{path}.tmp-{os.getpid()}-{time.time_ns()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _batches_with_file_positions(spec, split: str, files: list[str]):
    """The split in `read_records` order, in numpy batches: the FEATURES plus `file` (index into `files`)
    and `index` (position in that file), taken from TFDS's own example ids ("<file name>__<index>")."""
    ds = read_records(spec, split, FEATURES, add_tfds_id=True).batch(1 << 14)

    def split_id(b):
        parts = tf.strings.split(b.pop("tfds_id"), "__").to_tensor()
        return dict(b, name=parts[:, 0], index=tf.strings.to_number(parts[:, 1], tf.int64))

    file_of = {f.encode(): k for k, f in enumerate(files)}
    for b in ds.map(split_id).as_numpy_iterator():
        names, inverse = np.unique(b.pop("name"), return_inverse=True)
        b["file"] = np.array([file_of[n] for n in names])[inverse.reshape(-1)]
        yield b


def _write_files(spec, split: str, directory: str, files: list[str], examples: list[int]) -> None:
    """One pass over the split: each file's examples are gathered into its own buffers and the file is
    written as soon as all of them have been seen (TFDS reads a few files at a time, so only those are in
    memory), with `rank` = the example's position in the read order."""
    features = _features(_builder(spec))
    buffers, filled, position = {}, [0] * len(files), 0
    for b in _batches_with_file_positions(spec, split, files):
        n = len(b["file"])
        b[RANK] = np.arange(position, position + n, dtype=np.int64)
        position += n
        for k in np.unique(b["file"]):
            rows = b["file"] == k
            if k not in buffers:
                buffers[k] = {
                    f.name: np.zeros((examples[k], *f.shape), f.dtype)
                    for f in features + (Feature(RANK, "int64", ()),)
                }
            for name, buf in buffers[k].items():
                buf[b["index"][rows]] = b[name][rows]
            filled[k] += int(rows.sum())
            if filled[k] == examples[k]:
                bufs = buffers.pop(k)
                blob = b"".join(
                    bufs[f.name].astype(np.dtype(f.dtype).newbyteorder("<")).tobytes()
                    for f in features
                )
                _atomic_write(
                    os.path.join(directory, files[k] + SUFFIX),
                    blob + bufs[RANK].astype("<i8").tobytes(),
                )
    if buffers or filled != examples:
        raise ValueError(
            f"{spec.name} {split}: the TFRecords hold {filled}, not {examples} examples"
        )


def write_cache(spec, split: str = "train", force: bool = False) -> DecodedCache:
    """Writes (or, unless `force`, keeps a valid) cache of `spec`'s `split`; returns it validated.

    Costs one decoding pass over the split (what one start costs without the cache)."""
    builder = _builder(spec)
    if not force:
        _, cache = _problem(spec, split, builder)
        if cache is not None:
            logging.info("data: %s %s cache is up to date", spec.name, split)
            return cache
    t0 = time.perf_counter()
    expected = _expected(builder, split)
    files, examples = expected["tfrecords"], expected["examples"]
    directory = cache_dir(spec)
    tf.io.gfile.makedirs(directory)
    manifest_path = _manifest_path(spec, split)
    if tf.io.gfile.exists(manifest_path):  # an old manifest must not vouch for half-rewritten files
        tf.io.gfile.remove(manifest_path)
    _write_files(spec, split, directory, files, examples)
    base = os.fspath(builder.data_dir)
    manifest = dict(expected, tfrecord_bytes=_sizes([os.path.join(base, f) for f in files]))
    _atomic_write(manifest_path, json.dumps(manifest, indent=1))
    logging.info(
        "data: wrote the %s cache of %s (%s examples, %d files) in %.1f s",
        split,
        spec.name,
        f"{sum(examples):,}",
        len(files),
        time.perf_counter() - t0,
    )
    return open_cache(spec, split)


def main(argv) -> None:
    del argv
    from trm_tf.data import datasets

    spec = datasets.load_spec(_DATASET.value, _DATA_DIR.value)
    write_cache(spec, "train", force=_FORCE.value)


if __name__ == "__main__":
    from absl import app, flags

    _DATASET = flags.DEFINE_string(
        "dataset", None, "dataset/config, e.g. sudoku_extreme/sub1000_aug1000"
    )
    _DATA_DIR = flags.DEFINE_string(
        "data_dir", "~/tensorflow_datasets", "TFDS data dir (local or gs://)"
    )
    _FORCE = flags.DEFINE_bool("force", False, "rewrite the cache even if it is valid")
    flags.mark_flag_as_required("dataset")
    app.run(main)
