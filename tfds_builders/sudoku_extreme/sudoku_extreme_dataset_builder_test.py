"""TFDS builder tests for sudoku_extreme: manual-dir CSVs, the download path, a generated config.

Also checks, with tiny real builds, the nesting of subsamples, byte-identical rebuilds, metadata
read back without the builder, and that a bad CSV fails with a file:line error and leaves no
finished dataset behind.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import builder_utils
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx
from tfds_builders.sudoku_extreme import sudoku_lib, sudoku_solver
from trm_tf.tasks import sudoku

tfds.disable_progress_bar()


class ManualDirSub2Aug2Test(tfds.testing.DatasetBuilderTestCase):
    """Manual dir holding train.csv (5 rows) and test.csv (2 rows): 2 rows x (1 + 2 copies)."""

    DATASET_CLASS = sx.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["sub2_aug2"]
    SPLITS = {"train": 6, "test": 2}


class DownloadPathTest(tfds.testing.DatasetBuilderTestCase):
    """The manual dir lacks train.csv/test.csv, so the builder goes through dl_manager.download."""

    DATASET_CLASS = sx.Builder
    EXAMPLE_DIR = str(epath.Path(__file__).parent / "dummy_data" / "download_only")
    BUILDER_CONFIG_NAMES_TO_TEST = ["sub2_aug2"]
    DL_DOWNLOAD_RESULT = {"train": "hub_train.csv", "test": "hub_test.csv"}
    SPLITS = {"train": 6, "test": 1}
    # Checksums cannot be registered from this machine (no route to huggingface.co).
    SKIP_CHECKSUMS = True


class GeneratedTinyTest(tfds.testing.DatasetBuilderTestCase):
    """Generated config: 6 train puzzles x (1 + 2 copies), 3 test puzzles."""

    DATASET_CLASS = sx.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["generated_tiny"]
    SPLITS = {"train": 18, "test": 3}


def _write_csvs(folder: epath.Path, n_train: int, n_test: int, seed: int = 7) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    q, s = sudoku_solver.generate_puzzles(n_train + n_test, num_blanks=(20, 30), seed=seed)
    (folder / "train.csv").write_text(sudoku_lib.to_csv_text(q[:n_train], s[:n_train]))
    (folder / "test.csv").write_text(sudoku_lib.to_csv_text(q[n_train:], s[n_train:]))


def _build(config, data_dir, manual_dir):
    builder = sx.Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def _records(builder, split):
    """Examples of a split as {puzzle_index: example}, read in file order."""
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return {int(ex["puzzle_index"]): ex for ex in tfds.as_numpy(ds)}


def test_nested_subsamples_and_byte_identical_rebuild(tmp_path):
    manual = tmp_path / "manual"
    _write_csvs(epath.Path(manual), n_train=12, n_test=3)
    small = sx.SudokuConfig(name="sub3_aug4", subsample_size=3, num_aug=4)
    big = sx.SudokuConfig(name="sub6_aug4", subsample_size=6, num_aug=4)
    b_small = _build(small, tmp_path / "d1", manual)
    b_big = _build(big, tmp_path / "d2", manual)
    r_small, r_big = _records(b_small, "train"), _records(b_big, "train")
    assert len(r_small) == 15 and len(r_big) == 30
    # sub3's puzzles are exactly the first 3 groups (15 puzzles) of sub6, copies included.
    for k, ex in r_small.items():
        for f in ("inputs", "labels", "group", "puzzle_index", "puzzle_identifier"):
            np.testing.assert_array_equal(ex[f], r_big[k][f])
    for ex in r_big.values():
        assert ex["group"] == ex["puzzle_index"] // 5
        assert ex["puzzle_identifier"] == 0
        assert ex["inputs"].dtype == np.uint8 and ex["inputs"].shape == (81,)
        labels = sudoku.decode(ex["labels"])
        assert sudoku.is_valid_solution(labels)
        assert sudoku.givens_agree(sudoku.decode(ex["inputs"]), labels)[0]
    # Same config, fresh build => byte-identical record files.
    b_again = _build(small, tmp_path / "d3", manual)
    files1 = sorted(epath.Path(b_small.data_dir).glob("*.tfrecord*"))
    files2 = sorted(epath.Path(b_again.data_dir).glob("*.tfrecord*"))
    assert [f.name for f in files1] == [f.name for f in files2]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(files1, files2))
    # Test split: never subsampled nor augmented, in file order.
    test = _records(b_small, "test")
    assert sorted(test) == [0, 1, 2] and all(ex["group"] == k for k, ex in test.items())

    # Metadata is readable without the builder class (read-only builder from the files) and as JSON.
    meta = tfds.builder_from_directory(b_small.data_dir).info.metadata
    assert (
        meta["vocab_size"] == 11 and meta["seq_len"] == 81 and meta["num_puzzle_identifiers"] == 1
    )
    assert meta["total_groups"] == {"train": 3, "test": 3}
    assert meta["total_puzzles"] == {"train": 15, "test": 3}
    assert builder_utils.read_metadata(tmp_path / "d1", "sudoku_extreme/sub3_aug4") == dict(meta)


def test_bad_csv_fails_with_line_and_leaves_no_dataset(tmp_path):
    manual = epath.Path(tmp_path / "manual")
    _write_csvs(manual, n_train=4, n_test=2)
    lines = (manual / "train.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = fields[2][:-1] + ("1" if fields[2][-1] != "1" else "2")  # Break the solution.
    lines[3] = ",".join(fields)
    (manual / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(sudoku_lib.SudokuFormatError, match=r"train\.csv.*line 4"):
        _build("sub2_aug2", tmp_path / "data", manual)
    assert not list((tmp_path / "data").rglob("dataset_info.json"))
    assert not list((tmp_path / "data").rglob("*.tfrecord*"))


def test_shard_counts():
    assert builder_utils.num_shards_for(1_001_000) == 64
    assert builder_utils.num_shards_for(1000) == 64
    assert builder_utils.num_shards_for(500) == 31
    assert builder_utils.num_shards_for(3) == 1
    names = [c.name for c in sx.Builder.BUILDER_CONFIGS]
    assert len(names) == len(set(names))
    assert {f"sub{n}_aug{a}" for n in sx.SUBSAMPLE_SIZES for a in sx.NUM_AUGS} <= set(names)
    assert {"full_aug0", "generated_easy", "generated_medium", "generated_hard"} <= set(names)


if __name__ == "__main__":
    tf.test.main()
