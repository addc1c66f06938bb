"""Maze-Hard (30x30) as a TFDS dataset, following the TRM reference maze builder.

Configs:

* `hard`: the source CSVs as the reference README command builds them (no augmentation);
* `hard_aug8`: the same plus the 8 dihedral transforms of every train maze (one puzzle each, one group
  per original maze); the test split is never augmented;
* `generated`: 1000 train / 200 test offline, seeded perfect mazes with a unique shortest path longer
  than 110 moves (see `maze_lib`), for machines without the source data.

Source for `hard*`: `train.csv` and `test.csv` (header source,question,answer,rating) from the manual
directory when it holds both, else downloaded from the Hugging Face dataset
`sapientinc/maze-30x30-hard-1k` (register checksums once with `tfds build --register_checksums` on a
machine that can reach it). Every position is supervised (labels never hold the pad id 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import builder_utils
from trm_tf.tasks import maze as maze_task

from . import maze_lib

_URL = "https://huggingface.co/datasets/sapientinc/maze-30x30-hard-1k/resolve/main/{}.csv"


@dataclasses.dataclass
class MazeConfig(tfds.core.BuilderConfig):
    """One Maze-Hard variant.

    Attributes:
      source: "csv" (source data) or "generated" (offline generator).
      augment: add the 8 dihedral transforms of every train maze.
      num_train: generated train mazes (source == "generated").
      num_test: generated test mazes.
      seed: generator seed.
      min_path_length: generated mazes have a start-goal path longer than this (moves).
      num_shards: shards per split (clamped to the split size), so 64 hosts each read their own files.
    """

    source: str = "csv"
    augment: bool = False
    num_train: int = 1000
    num_test: int = 200
    seed: int = 0
    min_path_length: int = maze_lib.DEFAULT_MIN_PATH_LENGTH
    num_shards: int = 64


# Small generated config for tests; not listed in BUILDER_CONFIGS (pass it as `config=TINY_CONFIG`).
TINY_CONFIG = MazeConfig(
    name="generated_tiny",
    description="6 train / 3 test generated mazes (tests only).",
    source="generated",
    num_train=6,
    num_test=3,
    seed=1,
)


def shapes(config: str) -> tuple[int, int, int]:
    """(seq_len, vocab_size, num_puzzle_identifiers) a build of any config writes to its metadata (every
    maze shares the one identifier), known without building it (`trm_tf.data.datasets.dataset_shapes`)."""
    del config
    return maze_task.SEQ_LEN, maze_task.VOCAB_SIZE, 1


class Builder(builder_utils.ShardPolicy, tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for Maze-Hard 30x30."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (TRM reference encoding)."}
    BUILDER_CONFIGS = [
        MazeConfig(name="hard", description="Source CSVs, no augmentation (reference README)."),
        MazeConfig(
            name="hard_aug8",
            description="Source CSVs, 8 dihedral transforms of every train maze.",
            augment=True,
        ),
        MazeConfig(
            name="generated",
            description="1000 train / 200 test seeded perfect mazes, path > 110 moves.",
            source="generated",
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Optional: put train.csv and test.csv of the Hugging Face dataset sapientinc/maze-30x30-hard-1k in
    the manual directory; otherwise they are downloaded. The `generated` config needs nothing.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return builder_utils.dataset_info(
            self, maze_task.SEQ_LEN, "https://huggingface.co/datasets/sapientinc/maze-30x30-hard-1k"
        )

    def _source_paths(self, dl_manager) -> dict[str, epath.Path]:
        """train.csv / test.csv from the manual dir when it holds both, else downloaded."""
        splits = ("train", "test")
        return builder_utils.manual_or_download(
            dl_manager, {s: f"{s}.csv" for s in splits}, {s: _URL.format(s) for s in splits}
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        data = {}
        if cfg.source == "csv":
            for split, path in self._source_paths(dl_manager).items():
                data[split] = maze_lib.parse_csv(path.read_text(), str(path))
            source = "sapientinc/maze-30x30-hard-1k CSVs"
        elif cfg.source == "generated":
            for split_id, (split, num) in enumerate(
                (("train", cfg.num_train), ("test", cfg.num_test))
            ):
                inputs, labels, _ = maze_lib.generate(num, cfg.seed, split_id, cfg.min_path_length)
                data[split] = (inputs, labels)
            source = (
                f"generated perfect mazes, unique shortest path > {cfg.min_path_length} moves, "
                f"seed {cfg.seed}"
            )
        else:
            raise ValueError(f"unknown source {cfg.source!r}")
        copies = {"train": 8 if cfg.augment else 1, "test": 1}
        groups = {s: int(len(v[0])) for s, v in data.items()}
        self.info.metadata.update(
            {
                **builder_utils.core_metadata(maze_task.SEQ_LEN, maze_task.VOCAB_SIZE, 0, 1),
                "total_groups": groups,
                "total_puzzles": {s: groups[s] * copies[s] for s in groups},
                "mean_puzzle_examples": {s: 1.0 for s in groups},
                "charset": maze_task.CHARSET,
                "augment_train_dihedral": cfg.augment,
                "seed": cfg.seed,
                "description": f"Maze-Hard 30x30 ('# SGo' -> 1..5, pad 0); source: {source}.",
            }
        )
        return {s: self._generate_examples(*data[s], copies[s]) for s in ("train", "test")}

    def _generate_examples(self, inputs: np.ndarray, labels: np.ndarray, copies: int):
        # Puzzle p = copies * group + transform id, as the reference orders its augmented copies.
        per_t = [
            (maze_task.dihedral_rows(inputs, t), maze_task.dihedral_rows(labels, t))
            for t in range(copies)
        ]
        for g in range(len(inputs)):
            for t in range(copies):
                p = g * copies + t
                yield (
                    f"{p:08d}",
                    {
                        "inputs": per_t[t][0][g],
                        "labels": per_t[t][1][g],
                        "puzzle_identifier": 0,
                        "puzzle_index": p,
                        "group": g,
                    },
                )
