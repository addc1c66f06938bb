"""Tests for trm_tf.data.datasets: the builders found in tfds_builders/, and the shapes of a dataset that is
not built yet read from its builder (no table of datasets outside the builder's own folder)."""

import sys

import ml_collections
import pytest

import tfds_builders
from configs import args
from trm_tf import memory
from trm_tf.data import datasets
from trm_tf.memory_estimate import Inputs, estimate

_NEW_BUILDER = '''
def shapes(config):
    """A new puzzle type: 49 cells, 9 tokens, one identifier per config letter."""
    return 49, 9, len(config)
'''


def test_builders_are_the_folders_with_a_builder_module(tmp_path):
    for name in ("alpha", "beta", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "alpha" / "alpha_dataset_builder.py").write_text("")
    (tmp_path / "beta" / "beta_dataset_builder.py").write_text("")
    (tmp_path / "notes" / "README.md").write_text("")  # a folder without a builder module
    (tmp_path / "gamma_dataset_builder.py").write_text("")  # a file, not a folder
    assert datasets.discover_builders(tmp_path) == ("alpha", "beta")
    # The repository's own builders, each of which says its shapes without being built.
    assert set(datasets.KNOWN_BUILDERS) >= {"arc_agi", "maze_hard", "sudoku_extreme"}
    for name in datasets.KNOWN_BUILDERS:
        assert callable(datasets.import_builder(name).shapes), name
    with pytest.raises(ValueError, match="this repository builds"):
        datasets.import_builder("nope")


@pytest.fixture
def new_builder(tmp_path, monkeypatch):
    """A builder folder `tfds_builders/newtask/` that no list in trm_tf names."""
    folder = tmp_path / "newtask"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "newtask_dataset_builder.py").write_text(_NEW_BUILDER)
    monkeypatch.setattr(tfds_builders, "__path__", [*tfds_builders.__path__, str(tmp_path)])
    found = datasets.discover_builders(tmp_path)
    monkeypatch.setattr(datasets, "KNOWN_BUILDERS", datasets.KNOWN_BUILDERS + found)
    yield "newtask"
    for m in ("tfds_builders.newtask", "tfds_builders.newtask.newtask_dataset_builder"):
        sys.modules.pop(m, None)


def test_a_new_builder_needs_no_entry_elsewhere(new_builder, tmp_path):
    assert datasets.dataset_shapes(f"{new_builder}/abc") == (49, 9, 3)
    # The memory CLI's shapes of a config whose dataset is not built, and the estimate's vocabulary.
    config = ml_collections.ConfigDict(args.build("runlocal").to_dict())
    config.data.name, config.data.config = new_builder, "abcd"
    config.data.data_dir = str(tmp_path / "tfds")
    assert memory._shapes_for(config) == (49, 9, 4)
    assert Inputs.from_config(config, 49, 4, None).vocab_size == 9
    assert estimate(config, 49, 4, per_chip_batch=2).total > 0
    with pytest.raises(KeyError, match="not a builder of tfds_builders"):
        datasets.dataset_shapes("unknown/x")


def test_build_command_asks_for_the_source_files_unless_generated():
    cmd = datasets.build_command("arc_agi/arc1_aug1000", "gs://b/tfds")
    assert cmd.startswith(
        "tfds build tfds_builders/arc_agi --config=arc1_aug1000 --data_dir=gs://b/tfds "
        "--manual_dir=DIR_WITH_SOURCE_FILES"
    )
    assert "--manual_dir" not in datasets.build_command("sudoku_extreme/generated_easy", "/d")
    assert "--manual_dir=/src" in datasets.build_command("maze_hard/generated", "/d", "/src")
