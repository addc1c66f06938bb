"""Plumbing shared by the TFDS builders: the shard policy, the source-file resolver, metadata reading.

The builders differ in their task maths (which lives in `trm_tf.tasks` and in each builder's own
`*_lib.py`) but not in how they shard, find their source files, lay out their records or expose their metadata,
so those live here once:

* `download_config_with_shard_policy`: the shard count of every split from its own example count (TFDS's
  own policy is one count for the whole dataset, chosen from bytes), with an explicit count winning;
* `ShardPolicy`: the builders' mixin applying it, whose `download_and_prepare` (the `tfds build` CLI's and
  `trm_tf.data.prepare`'s entry) ends by writing the train split's decoded cache (`decoded_cache`);
* `manual_or_download`: the source files from the manual dir when it holds all of them, else downloaded;
* `read_metadata`: a built config's `metadata.json`, without importing any builder;
* `dataset_info` / `core_metadata` / `CORE_FEATURES`: the features and metadata fields every builder writes
  (the trainer's input pipeline reads exactly these), so a builder states only what its task adds.

Importing this module needs the repository on the import path (`pip install -e .`), as the builders
import it by its package name (`tfds build tfds_builders/<name>` loads a builder as a top-level package).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from tensorflow_datasets.core.utils import shard_utils

METADATA_FILE = "metadata.json"
# The features every builder writes (`dataset_info`), which training and evaluation read.
CORE_FEATURES = ("inputs", "labels", "puzzle_identifier", "puzzle_index", "group")

# Splits with at least this many examples get `MAX_SHARDS` files, so each of up to 64 hosts reads its
# own files with `tfds.ReadConfig(input_context=...)`; smaller splits get one file per 16 examples, so
# a tiny split is not cut into files of one record.
MAX_SHARDS = 64
MIN_EXAMPLES_FOR_MAX_SHARDS = 1000
MIN_EXAMPLES_PER_SHARD = 16


def num_shards_for(num_examples: int, num_shards: int | None = None) -> int:
    """Shard count of one split.

    Args:
      num_examples: examples in the split.
      num_shards: an explicit count (`--num_shards`, `DownloadConfig(num_shards=)` or a builder config's
        own default); it wins, clamped to [1, num_examples] since a file cannot hold less than a record.

    Returns:
      `num_shards` clamped, else 64 from 1000 examples on, else one shard per 16 examples (>= 1).
    """
    if num_shards:
        return max(1, min(num_shards, num_examples))
    if num_examples >= MIN_EXAMPLES_FOR_MAX_SHARDS:
        return MAX_SHARDS
    return max(1, min(MAX_SHARDS, num_examples // MIN_EXAMPLES_PER_SHARD))


@dataclasses.dataclass(frozen=True)
class _PerSplitShardConfig(shard_utils.ShardConfig):
    """TFDS's writer asks this for each split's shard count; it answers with `num_shards_for`."""

    def get_number_shards(
        self, total_size: int, num_examples: int, uses_precise_sharding: bool = True
    ) -> int:
        return num_shards_for(num_examples, self.num_shards)


@dataclasses.dataclass(eq=False)
class _PerSplitShardDownloadConfig(tfds.download.DownloadConfig):
    def get_shard_config(self) -> shard_utils.ShardConfig:
        return _PerSplitShardConfig(
            num_shards=self.num_shards,
            min_shard_size=self.min_shard_size,
            max_shard_size=self.max_shard_size,
        )


def download_config_with_shard_policy(
    download_config: tfds.download.DownloadConfig, default_num_shards: int | None = None
) -> tfds.download.DownloadConfig:
    """A copy of `download_config` whose writer shards every split by `num_shards_for`.

    Call it from a builder's `_download_and_prepare` and pass the result to the parent's.

    Args:
      download_config: what the caller (the CLI or `download_and_prepare`) passed.
      default_num_shards: the builder config's own count, used when the caller chose none (None: the
        count follows each split's example count).
    """
    fields = {
        f.name: getattr(download_config, f.name)
        for f in dataclasses.fields(download_config)
        if f.init
    }
    if fields.get("num_shards") is None:
        fields["num_shards"] = default_num_shards
    return _PerSplitShardDownloadConfig(**fields)


class ShardPolicy:
    """Mixin of a `GeneratorBasedBuilder` (listed before it): its `_download_and_prepare` shards every
    split by `num_shards_for`, defaulting to the builder config's `num_shards` when it has one, and its
    `download_and_prepare` (what `tfds build` and `python -m trm_tf.data.prepare` call) ends by writing
    the train split's decoded cache (`decoded_cache`) when it is missing, also when the dataset was built
    before, so no training launch has to write it."""

    def download_and_prepare(self, *args, **kwargs):
        from tfds_builders import decoded_cache  # noqa: PLC0415 (decoded_cache imports this module)

        super().download_and_prepare(*args, **kwargs)
        if "train" in self.info.splits:
            decoded_cache.write(self, "train")

    def _download_and_prepare(self, dl_manager, download_config):
        default = getattr(self.builder_config, "num_shards", None)
        return super()._download_and_prepare(
            dl_manager, download_config_with_shard_policy(download_config, default)
        )


def dataset_info(
    builder: tfds.core.GeneratorBasedBuilder, seq_len: int, homepage: str, **extra_features
) -> tfds.core.DatasetInfo:
    """A builder's `_info`: the features every builder writes, then `extra_features` (name: feature).

    Every record holds `inputs` and `labels` (uint8 [seq_len] tokens) and the int32 scalars
    `puzzle_identifier` (row of the puzzle embedding), `puzzle_index` and `group` (puzzles of one base
    example share a group); `(inputs, labels)` are the supervised keys.
    """
    features = {  # CORE_FEATURES
        "inputs": tfds.features.Tensor(shape=(seq_len,), dtype=np.uint8),
        "labels": tfds.features.Tensor(shape=(seq_len,), dtype=np.uint8),
        "puzzle_identifier": tfds.features.Scalar(dtype=np.int32),
        "puzzle_index": tfds.features.Scalar(dtype=np.int32),
        "group": tfds.features.Scalar(dtype=np.int32),
        **extra_features,
    }
    return builder.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=("inputs", "labels"),
        homepage=homepage,
        metadata=tfds.core.MetadataDict(),
    )


def core_metadata(seq_len: int, vocab_size: int, pad_id: int, num_puzzle_identifiers: int) -> dict:
    """The metadata fields the trainer needs of every dataset (label id 0 and puzzle id 0 are ignored /
    blank in every builder); a builder adds its own fields after these."""
    return {
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "pad_id": pad_id,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "num_puzzle_identifiers": num_puzzle_identifiers,
    }


def manual_or_download(
    dl_manager: tfds.download.DownloadManager, files: Mapping[str, str], urls: Mapping[str, str]
) -> dict[str, epath.Path]:
    """Paths of a builder's source files: from the manual dir when it holds all of them, else downloaded.

    Args:
      dl_manager: the builder's download manager.
      files: key -> file name looked for in the manual dir.
      urls: key -> URL (same keys), downloaded (and checksum-checked) when the manual dir lacks a file.

    Returns:
      key -> path (local or gs://).
    """
    try:
        manual = epath.Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS asserts when the manual dir is missing or empty.
        manual = None
    if manual is not None:
        missing = [name for name in files.values() if not (manual / name).exists()]
        if not missing:
            return {key: manual / name for key, name in files.items()}
        if len(missing) < len(files):
            # Some of the user's files are there: never silently mix or replace them with downloads.
            raise FileNotFoundError(
                f"--manual_dir={manual} lacks {', '.join(missing)} (it needs {', '.join(files.values())})"
            )
        logging.warning(
            "--manual_dir=%s holds none of %s; downloading them", manual, list(files.values())
        )
    try:
        return {key: epath.Path(p) for key, p in dl_manager.download(dict(urls)).items()}
    except Exception as e:  # noqa: BLE001  (TFDS raises many kinds; the user needs one line)
        raise ConnectionError(
            f"downloading {', '.join(files.values())} failed ({type(e).__name__}); put them in a folder "
            "and pass it as --manual_dir"
        ) from e


def _require_network(
    urls: Mapping[str, str], files: Mapping[str, str], timeout: float = 3.0
) -> None:
    """Fails within seconds, naming --manual_dir, when the download host cannot be reached (offline, TFDS
    would retry for minutes and end in a long traceback)."""
    import socket
    from urllib.parse import urlparse

    names = ", ".join(files)
    for url in urls:
        u = urlparse(url)
        if not u.hostname:
            continue
        try:
            with socket.create_connection((u.hostname, u.port or 443), timeout=timeout):
                pass
        except OSError:
            raise ConnectionError(
                f"cannot reach {u.hostname} to download {names}; put them in a folder and pass it as "
                "--manual_dir"
            ) from None


def read_metadata(data_dir: epath.PathLike, name_and_config: str) -> dict:
    """Reads `metadata.json` of a built config without importing TFDS's builder machinery.

    `tfds.builder(name_and_config, data_dir=...).info.metadata` gives the same dict; this reader is for
    tools that only need the numbers, and works without the builder being registered.

    Args:
      data_dir: the TFDS data dir (local or gs://).
      name_and_config: e.g. "sudoku_extreme/generated_easy" (optionally with "/1.0.0").

    Returns:
      the metadata dict.
    """
    parts = name_and_config.split("/")
    base = epath.Path(data_dir).joinpath(*parts)
    if len(parts) < 3:  # No version given: take the highest one on disk.
        versions = sorted(
            (p for p in base.iterdir() if (p / METADATA_FILE).exists()),
            key=lambda p: tuple(int(x) for x in p.name.split(".")),
        )
        if not versions:
            raise FileNotFoundError(f"no built version with {METADATA_FILE} under {base}")
        base = versions[-1]
    return json.loads((base / METADATA_FILE).read_text())
