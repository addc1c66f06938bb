"""What the model and the trainer know about a built dataset: its `DatasetSpec`, read from TFDS metadata.

Its own module so that every part of the data package can name it without importing another's machinery:
`datasets` makes it (`load_spec`, and `build_dataset`, whose builder also writes the train split's decoded
cache), `records`, `cache`, `eval_input` and `input_pipeline` read the split it describes.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the model and the trainer need to know about a built dataset (from its TFDS metadata)."""

    name: str  # "sudoku_extreme/sub1000_aug1000"
    data_dir: str
    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int
    pad_id: int
    ignore_label_id: int
    blank_identifier_id: int
    total_groups: int  # training groups (base puzzles)
    mean_puzzle_examples: float  # training examples per puzzle
    num_train_examples: int
    num_test_examples: int
    test_shard_lengths: tuple[int, ...]
    metadata: dict[str, Any]

    def steps_per_epoch(self, global_batch_size: int) -> float:
        """Optimizer steps per epoch, as the reference counts them (groups x mean examples / batch)."""
        return self.total_groups * self.mean_puzzle_examples / global_batch_size
