"""Shared test helpers: tiny real TFDS datasets built with the repository's builders."""

from __future__ import annotations

import os
import pathlib

from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku_builder
from trm_tf.data import datasets

# Real ARC-AGI tasks that ship with the ARC builder (its dummy data).
ARC_DUMMY_DATA = (
    pathlib.Path(__file__).resolve().parents[2] / "tfds_builders" / "arc_agi" / "dummy_data"
)

# A small generated Sudoku dataset: 40 base puzzles x (1 + 3 shuffles) for training, 37 test puzzles.
TINY_SUDOKU = sudoku_builder.SudokuConfig(
    name="pipeline_test",
    description="Test-only generated config.",
    source="generated",
    seed=7,
    num_train=40,
    num_test=37,
    num_aug=3,
    num_blanks=(4, 8),
    require="singles",
)


def build_tiny_sudoku(data_dir: str, config: sudoku_builder.SudokuConfig = TINY_SUDOKU):
    """Builds `config` into data_dir (once) and returns its DatasetSpec."""
    name = f"sudoku_extreme/{config.name}"
    if not os.path.exists(os.path.join(data_dir, "sudoku_extreme", config.name)):
        sudoku_builder.Builder(config=config, data_dir=data_dir).download_and_prepare()
    return datasets.load_spec(name, data_dir)


def build_tiny_arc(data_dir: str):
    """Builds `arc_agi/arc1_aug10` from the builder's dummy data (3 real tasks per subset, once) and returns
    its DatasetSpec. Its puzzles have several examples (a task's demonstration pairs), so it exercises what
    one-example Sudoku puzzles cannot: puzzle groups that must stay on one host, ARC eval features."""
    name = "arc_agi/arc1_aug10"
    if os.path.exists(os.path.join(data_dir, "arc_agi", "arc1_aug10")):
        return datasets.load_spec(name, data_dir)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    manual_dir = os.path.join(repo, "tfds_builders", "arc_agi", "dummy_data")
    return datasets.build_dataset(name, data_dir, manual_dir)
