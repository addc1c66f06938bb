"""Pins what the builders write: tiny configs of all three builders, built from the dummy data or the
generators, must give the same files and the same records as when these digests were taken.

A refactor of the builders, their libraries or `trm_tf.tasks` that changed one token, one shard count, one
metadata field or the record order would change a digest. Records are compared parsed (feature by
feature): the serialized bytes of a `tf.train.Example` depend on the protobuf map order, which varies
between processes, so raw file bytes are only reproducible within one process (the Sudoku builder's test
checks that).

If a change is meant to alter a dataset, bump the builder's VERSION and update the digest here.
"""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import builder_utils, decoded_cache
from tfds_builders.arc_agi import arc_agi_dataset_builder as arc_builder
from tfds_builders.maze_hard import maze_hard_dataset_builder as maze_builder
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku_builder

tfds.disable_progress_bar()

_HERE = epath.Path(__file__).parent


def build_digest(data_dir: epath.Path) -> str:
    """sha256 over a built config: file names in order, each record's features (sorted by name, with
    their values as typed arrays) and the JSON side files; `dataset_info.json` (build times, paths) and
    the decoded cache (derived from the records, and tested with them in tests/data) are left out."""
    h = hashlib.sha256()
    for f in sorted(data_dir.iterdir(), key=lambda p: p.name):
        if f.name in ("dataset_info.json", decoded_cache.CACHE_DIR):
            continue
        h.update(f.name.encode() + b"\0")
        if ".tfrecord" in f.name:
            for raw in tf.data.TFRecordDataset(str(f)):
                feats = tf.train.Example.FromString(raw.numpy()).features.feature
                for key in sorted(feats):
                    v = feats[key]
                    kind = v.WhichOneof("kind")
                    h.update(key.encode() + b"=" + kind.encode())
                    if kind == "int64_list":
                        h.update(np.asarray(v.int64_list.value, np.int64).tobytes())
                    elif kind == "float_list":
                        h.update(np.asarray(v.float_list.value, np.float32).tobytes())
                    else:
                        h.update(b"\0".join(v.bytes_list.value))
                h.update(b"\n")
        elif f.name.endswith(".json"):
            h.update(json.dumps(json.loads(f.read_text()), sort_keys=True).encode())
        else:
            h.update(f.read_bytes())
    return h.hexdigest()


# (builder module, config, manual dir or None).
CASES = {
    "sudoku_generated_tiny": (sudoku_builder, "generated_tiny", None),
    "sudoku_sub2_aug2": (sudoku_builder, "sub2_aug2", _HERE / "sudoku_extreme" / "dummy_data"),
    "maze_generated_tiny": (maze_builder, maze_builder.TINY_CONFIG, None),
    "maze_hard_aug8": (maze_builder, "hard_aug8", _HERE / "maze_hard" / "dummy_data"),
    "arc1_aug10": (arc_builder, "arc1_aug10", _HERE / "arc_agi" / "dummy_data"),
}
# Taken from builds made before the task maths moved to `trm_tf.tasks` and the builders' plumbing to
# `builder_utils`; the two Sudoku digests were retaken when the metadata's description text changed
# its citation to docs/model.md (records and every other file unchanged).
DIGESTS = {
    "sudoku_generated_tiny": "150d0ba5bcf989a9e7aaf18a2e49f70c10cda35decf90bce6302b273fdff2c02",
    "sudoku_sub2_aug2": "c6450d5ef7ba3f280f7992af09600937cf2cd2d2af765b1d5d5741345d9381b8",
    "maze_generated_tiny": "ca0e0dfee8684bb08a1e8cb7bf9bb6ec40e11e75ffea74f91e387c84a1e8014e",
    "maze_hard_aug8": "ea771fc2c3892a0b09c8a793326a83ff49c34ee869af9f884dfe0264a06f9ff2",
    "arc1_aug10": "17270ebff14c94699ea47d13bf83f6dffdb40531d81a13a0d9a9cc65dbb027c2",
}


def build(module, config, manual_dir, data_dir) -> epath.Path:
    builder = module.Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir)
        )
    )
    return epath.Path(builder.data_dir)


@pytest.mark.parametrize("case", sorted(CASES))
def test_build_matches_pinned_digest(case, tmp_path):
    module, config, manual_dir = CASES[case]
    built = build(module, config, manual_dir, tmp_path)
    assert build_digest(built) == DIGESTS[case]
    # The builder's `shapes` (what the memory estimate uses before a build) is what the build wrote;
    # ARC's identifiers are an upper bound (its dummy data has few tasks).
    meta = json.loads((built / builder_utils.METADATA_FILE).read_text())
    seq_len, vocab_size, ids = module.shapes(getattr(config, "name", config))
    assert (meta["seq_len"], meta["vocab_size"]) == (seq_len, vocab_size)
    if module is arc_builder:
        assert 1 < meta["num_puzzle_identifiers"] <= ids
    else:
        assert meta["num_puzzle_identifiers"] == ids
