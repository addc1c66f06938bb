r"""The decoded array cache of a TFDS split, so that a run starts in seconds instead of re-parsing TFRecords.

  python -m trm_tf.data.cache --dataset=sudoku_extreme/sub1000_aug1000 --data_dir=gs://BUCKET/tfds

**Why.** Training holds a host's whole share of the train split in memory (see `input_pipeline`). Parsing it
from TFRecords costs about 30 s per million Sudoku examples on one CPU core, on every start and resume, and
minutes for ARC with 1000 augmentations. The cache stores the same examples already decoded, as raw
little-endian arrays, so loading is reading bytes: no parsing, no per-example work.

**Written by the build.** Every build of a repository builder writes it (`tfds build tfds_builders/<name>`,
`python -m trm_tf.data.prepare`; the layout and the writer are `tfds_builders.decoded_cache`). The command
above writes it for a dataset built before the build did (a no-op when a valid cache is there; `--force`
rewrites). A training launch that finds it missing (`require_cache`) writes it itself on one machine, and
refuses (DecodedCacheMissingError, exit 3, naming that command) when it drives remote TPU hosts.

**Validation** (`open_cache`, on the client, before any graph is built; once per process): the manifest must
match the dataset's metadata (name, version, features, files, examples per file, TFRecord bytes, all read
from the one `tfds.builder` of the dataset, `datasets.tfds_builder`) and a listing of the cache folder must
show every cache file: two storage calls whatever the number of files. Otherwise it logs one warning line
and the pipeline reads the TFRecords. The in-graph reader asserts each file's size, so a file replaced or
cut after the build fails the run (naming the command that rewrites it) instead of feeding wrong data.

**In-graph reading** (`load_examples`): `tf.io.read_file` + `tf.io.decode_raw` on the host, so it works on
gs:// and the dataset graph holds file names, never examples (TF graphs are limited to 2 GB).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from absl import logging

from tfds_builders import decoded_cache as layout
from trm_tf.data import datasets
from trm_tf.data.spec import DatasetSpec


@dataclasses.dataclass(frozen=True)
class DecodedCache:
    """A validated cache of one split: its cache files (TFRecord file order) and their example counts."""

    split: str
    features: tuple[layout.Feature, ...]
    paths: tuple[str, ...]
    examples: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return sum(f.row_bytes for f in self.features) + 8  # + rank

    @property
    def num_examples(self) -> int:
        return sum(self.examples)


def _builder(spec: DatasetSpec):
    return datasets.tfds_builder(spec.name, spec.data_dir)


def cache_dir(spec: DatasetSpec) -> str:
    """The folder of `spec`'s cache files (next to its TFRecords)."""
    return layout.cache_dir(_builder(spec))


def command(spec: DatasetSpec, force: bool = False) -> str:
    """The command that writes `spec`'s train cache."""
    return f"python -m trm_tf.data.cache --dataset={spec.name} --data_dir={spec.data_dir}" + (
        " --force" if force else ""
    )


def _problem(spec: DatasetSpec, split: str) -> tuple[str, DecodedCache | None]:
    """(why the cache is unusable or "", the cache): one manifest read and one folder listing."""
    builder = _builder(spec)
    why, manifest = layout.read_manifest(builder, split)
    if manifest is None:
        return why, None
    directory = layout.cache_dir(builder)
    names = [f + layout.SUFFIX for f in manifest["tfrecords"]]
    present = set(tf.io.gfile.listdir(directory))
    missing = [n for n in names if n not in present]
    if missing:
        return f"{missing[0]} is missing", None
    return "", DecodedCache(
        split=split,
        features=layout.features(builder.info),
        paths=tuple(os.path.join(directory, n) for n in names),
        examples=tuple(manifest["examples"]),
    )


def _check(spec: DatasetSpec, split: str) -> tuple[str, DecodedCache | None]:
    try:
        return _problem(spec, split)
    except (KeyError, tf.errors.OpError) as e:  # e.g. no such split, unreachable bucket
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", None


# Caches validated by this process: (dataset, data_dir, split) -> DecodedCache. A start validates once;
# `write_cache` replaces the entry, `forget` drops them (tests that damage a cache).
_VALIDATED: dict[tuple[str, str, str], DecodedCache] = {}


def forget() -> None:
    """Forgets the caches validated so far (the next `open_cache` reads the manifest again)."""
    _VALIDATED.clear()


def open_cache(spec: DatasetSpec, split: str = "train", quiet: bool = False) -> DecodedCache | None:
    """The split's validated cache, or None after one log line saying why the TFRecords will be read.

    Validated once per process (two storage calls); later calls return the same cache."""
    key = (spec.name, spec.data_dir, split)
    if key in _VALIDATED:
        return _VALIDATED[key]
    why, cache = _check(spec, split)
    if cache is None:
        if not quiet:
            log = logging.info if why == "missing" else logging.warning
            log(
                "data: %s %s cache %s; reading TFRecords (write it: %s)",
                spec.name,
                split,
                why,
                command(spec),
            )
        return None
    _VALIDATED[key] = cache
    return cache


def require_cache(spec: DatasetSpec, remote_hosts: bool) -> DecodedCache:
    """The train split's cache for a training launch. The build writes it; when it is missing or stale, a
    launch that drives remote TPU hosts refuses (DecodedCacheMissingError, one line naming the command
    that writes it: the client would stream the whole split), and a launch on one machine writes it now,
    saying in one line that the build should have."""
    cache = open_cache(spec, "train", quiet=True)
    if cache is not None:
        return cache
    why = _check(spec, "train")[0]
    if remote_hosts:
        raise datasets.DecodedCacheMissingError(
            f"no valid decoded cache of {spec.name} train in {spec.data_dir} ({why}); write it "
            f"before launching on TPU hosts: {command(spec)}"
        )
    logging.warning(
        "data: no valid decoded cache of %s train (%s); writing it now (the build writes it: tfds "
        "build / python -m trm_tf.data.prepare; or: %s)",
        spec.name,
        why,
        command(spec),
    )
    return write_cache(spec, "train", force=True)


# ---- In-graph reading.


def _decode_file(cache: DecodedCache, path, n, hosts: int, host: int) -> dict:
    """One cache file's examples as [n, ...] tensors (+ rank); with hosts > 1 only groups of `host`."""
    content = tf.io.read_file(path)
    size = tf.cast(n, tf.int64) * cache.row_bytes
    ok = tf.debugging.assert_equal(
        tf.cast(tf.strings.length(content), tf.int64),
        size,
        message="decoded cache file changed size since the build wrote it; rewrite the cache: "
        "python -m trm_tf.data.cache --force --dataset=... --data_dir=...",
    )
    out, offset = {}, tf.constant(0, tf.int64)
    with tf.control_dependencies([ok]):
        for f in cache.features + (layout.Feature(layout.RANK, "int64", ()),):
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


# ---- Writing (the build's job; this module's command for datasets built before).


def write_cache(spec: DatasetSpec, split: str = "train", force: bool = False) -> DecodedCache:
    """Writes (or, unless `force`, keeps a valid) cache of `spec`'s `split`; returns it validated.

    Costs one decoding pass over the split (what one start costs without the cache)."""
    _VALIDATED.pop((spec.name, spec.data_dir, split), None)
    if not force and open_cache(spec, split, quiet=True) is not None:
        logging.info("data: %s %s cache is up to date", spec.name, split)
        return _VALIDATED[(spec.name, spec.data_dir, split)]
    layout.write(_builder(spec), split, force=True)
    return open_cache(spec, split)


def main(argv) -> None:
    del argv
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
