"""TFDS builder for Sudoku-Extreme, plus offline configs from a seeded generator.

Configs:
  * `sub{N}_aug{A}`: N training rows of the Sudoku-Extreme `train.csv` chosen by one seeded
    permutation (nested: sub100 ⊂ sub250 ⊂ ...), each with its original plus A shuffled copies;
    the test split is the whole `test.csv`, never subsampled nor augmented.
  * `full_aug0`: every training row, unaugmented.
  * `generated_{tiny,easy,mid,medium,hard}`: puzzles from `sudoku_solver.generate_puzzles` (no download).
  * `generated_extreme`, `generated_extreme_lite`, `generated_extreme_mix`, `generated_extreme_tiny`:
    puzzles that need search (`sudoku_solver.generate_search_puzzles`; `_mix` makes half of them
    singles-solvable), each with its backtrack rating in the metadata.

The CSVs come from `dl_manager.manual_dir` when that folder holds `train.csv` and `test.csv`,
otherwise from the Hugging Face hub via `dl_manager.download`.

Python build without the CLI:
  Builder(config="generated_easy", data_dir=DIR).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=CSV_DIR))
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import builder_utils
from trm_tf.tasks import sudoku as sudoku_task

from . import sudoku_lib, sudoku_solver

_HF_BASE = "https://huggingface.co/datasets/sapientinc/sudoku-extreme/resolve/main"
URLS = {"train": f"{_HF_BASE}/train.csv", "test": f"{_HF_BASE}/test.csv"}

SUBSAMPLE_SIZES = (100, 250, 500, 1000, 2000, 5000, 10000)
NUM_AUGS = (0, 10, 100, 500, 1000, 2000)


@dataclasses.dataclass
class SudokuConfig(tfds.core.BuilderConfig):
    """Config of one Sudoku dataset variant.

    Attributes:
      source: "csv" (Sudoku-Extreme files) or "generated" (`sudoku_solver.generate_puzzles`).
      subsample_size: csv: number of training rows (nested seeded subsample); None = all rows.
      num_aug: shuffled copies per training puzzle (besides the original).
      min_difficulty: csv: keep rows with rating >= this (applied to both splits, as the reference).
      seed: seed of the subsample, the augmentations and the generator.
      num_train: generated: number of training puzzles.
      num_test: generated: number of test puzzles.
      num_blanks: generated: (lo, hi) blanks per puzzle, or None to use `min_clues`.
      min_clues: generated: greedy clue removal down to this many clues (unique solution kept).
      require: generated with num_blanks: "singles" (naked singles solve it) or "unique";
        "search": puzzles that need search (`sudoku_solver.generate_search_puzzles`), with
        `rating_band` and `max_blanks`.
      rating_band: "search": inclusive (lo, hi) of the backtrack rating (hi None = unbounded).
      max_blanks: "search": at most this many blanks (None: minimal puzzles).
      easy_fraction: "search": expected share of puzzles made singles-solvable (rating 0).
    """

    source: str = "csv"
    subsample_size: int | None = None
    num_aug: int = 0
    min_difficulty: int | None = None
    seed: int = 0
    num_train: int = 0
    num_test: int = 0
    num_blanks: tuple[int, int] | None = None
    min_clues: int | None = None
    require: str = "singles"
    rating_band: tuple[int, int | None] = (1, None)
    max_blanks: int | None = None
    easy_fraction: float = 0.0


def _csv_configs() -> list[SudokuConfig]:
    configs = [
        SudokuConfig(
            name=f"sub{n}_aug{a}",
            description=f"{n} seeded training rows of Sudoku-Extreme, original + {a} shuffles each.",
            subsample_size=n,
            num_aug=a,
        )
        for n in SUBSAMPLE_SIZES
        for a in NUM_AUGS
    ]
    configs.append(
        SudokuConfig(name="full_aug0", description="All Sudoku-Extreme training rows, unaugmented.")
    )
    configs.append(
        SudokuConfig(
            name="sub2_aug2",
            description="Test config: 2 training rows, original + 2 shuffles each.",
            subsample_size=2,
            num_aug=2,
        )
    )
    return configs


_GENERATED_CONFIGS = [
    SudokuConfig(
        name="generated_easy",
        description=(
            "Generated: 50,000 train / 1,000 test puzzles with 6-12 blanks, each solvable by naked "
            "singles alone. Unaugmented."
        ),
        source="generated",
        seed=1,
        num_train=50_000,
        num_test=1_000,
        num_blanks=(6, 12),
        require="singles",
    ),
    SudokuConfig(
        name="generated_mid",
        description=(
            "Generated: 20,000 train / 1,000 test puzzles with 18-26 blanks, solvable by repeated "
            "naked singles (several rounds of propagation). Unaugmented. The CPU replication's task."
        ),
        source="generated",
        seed=5,
        num_train=20_000,
        num_test=1_000,
        num_blanks=(18, 26),
        require="singles",
    ),
    SudokuConfig(
        name="generated_medium",
        description=(
            "Generated: 20,000 train / 1,000 test puzzles with 30-45 blanks and a unique solution "
            "(checked by propagation and a solution-counting search). Unaugmented."
        ),
        source="generated",
        seed=2,
        num_train=20_000,
        num_test=1_000,
        num_blanks=(30, 45),
        require="unique",
    ),
    SudokuConfig(
        name="generated_hard",
        description=(
            "Generated: 5,000 train / 1,000 test puzzles reduced greedily to at most 22 clues or "
            "until no clue can be removed (about 22-26 clues), unique solution; original + 10 "
            "shuffles per training puzzle."
        ),
        source="generated",
        seed=3,
        num_train=5_000,
        num_test=1_000,
        num_aug=10,
        min_clues=22,
    ),
    SudokuConfig(
        name="generated_extreme",
        description=(
            "Generated Sudoku-Extreme stand-in: 1,000 train / 1,000 test minimal puzzles (no clue "
            "can be removed) that need search (backtrack rating >= 1: naked and hidden singles alone "
            "do not solve them), unique solution; original + 100 shuffles per training puzzle."
        ),
        source="generated",
        seed=6,
        num_train=1_000,
        num_test=1_000,
        num_aug=100,
        require="search",
    ),
    SudokuConfig(
        name="generated_extreme_lite",
        description=(
            "Generated: 1,000 train / 1,000 test puzzles that need search (rating >= 1) with at most "
            "24 blanks (solution digits put back into a minimal puzzle while it still needs search), "
            "unique solution; original + 100 shuffles per training puzzle."
        ),
        source="generated",
        seed=7,
        num_train=1_000,
        num_test=1_000,
        num_aug=100,
        require="search",
        max_blanks=24,
    ),
    SudokuConfig(
        name="generated_extreme_mix",
        description=(
            "Generated: as generated_extreme_lite (at most 24 blanks, rating >= 1), but each puzzle "
            "with probability 0.5 turned into its easy twin (solution digits put back until naked "
            "and hidden singles solve it, rating 0), as Sudoku-Extreme mixes easy and hard puzzles; "
            "original + 100 shuffles per training puzzle. The CPU pilot's task."
        ),
        source="generated",
        seed=9,
        num_train=1_000,
        num_test=1_000,
        num_aug=100,
        require="search",
        max_blanks=24,
        easy_fraction=0.5,
    ),
    SudokuConfig(
        name="generated_extreme_tiny",
        description="Test config: 4 train / 3 test search-needing puzzles, 2 shuffles each.",
        source="generated",
        seed=8,
        num_train=4,
        num_test=3,
        num_aug=2,
        require="search",
        max_blanks=24,
    ),
    SudokuConfig(
        name="generated_tiny",
        description="Test config: 6 train / 3 test generated puzzles, 8-10 blanks, 2 shuffles each.",
        source="generated",
        seed=4,
        num_train=6,
        num_test=3,
        num_aug=2,
        num_blanks=(8, 10),
        require="singles",
    ),
]


def _static_metadata() -> dict:
    meta = builder_utils.core_metadata(
        sudoku_task.SEQ_LEN, sudoku_task.VOCAB_SIZE, sudoku_task.PAD_ID, num_puzzle_identifiers=1
    )
    return {**meta, "sets": ["all"]}


def shapes(config: str) -> tuple[int, int, int]:
    """(seq_len, vocab_size, num_puzzle_identifiers) a build of any config writes to its metadata (every
    puzzle shares the one blank identifier), known without building it
    (`trm_tf.data.datasets.dataset_shapes`)."""
    del config
    return sudoku_task.SEQ_LEN, sudoku_task.VOCAB_SIZE, 1


class Builder(builder_utils.ShardPolicy, tfds.core.GeneratorBasedBuilder):
    """Sudoku-Extreme and seeded generated Sudoku datasets."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = _csv_configs() + _GENERATED_CONFIGS
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Optional. Put Sudoku-Extreme's `train.csv` and `test.csv` (from
    https://huggingface.co/datasets/sapientinc/sudoku-extreme) in the manual dir
    (`--manual_dir=DIR`); without them the builder downloads both files from the hub.
    Generated configs (`generated_*`) need neither.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return builder_utils.dataset_info(
            self, sudoku_task.SEQ_LEN, "https://huggingface.co/datasets/sapientinc/sudoku-extreme"
        )

    def _load_csv_splits(self, dl_manager) -> dict[str, tuple[dict, str]]:
        paths = builder_utils.manual_or_download(dl_manager, {s: f"{s}.csv" for s in URLS}, URLS)
        out = {}
        for split, path in paths.items():
            parsed = sudoku_lib.parse_csv_text(
                path.read_text(),
                filename=f"{split}.csv ({path})",
                min_difficulty=self.builder_config.min_difficulty,
            )
            out[split] = (parsed, str(path.name))
        return out

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        ratings = None
        if cfg.source == "csv":
            data = self._load_csv_splits(dl_manager)
            train, test = data["train"][0], data["test"][0]
            rows = sudoku_lib.subsample_rows(len(train["questions"]), cfg.subsample_size, cfg.seed)
            train_q, train_s = train["questions"][rows], train["solutions"][rows]
            # Augmentation seeds use the row index in train.csv, so a base puzzle's copies do not
            # depend on which subsample it is in.
            train_rows = rows
            test_q, test_s = test["questions"], test["solutions"]
            source = (
                f"Sudoku-Extreme CSVs ({URLS['train']}); train rows: "
                + (
                    f"first {len(rows)} of a permutation seeded with {cfg.seed}"
                    if cfg.subsample_size is not None
                    else "all, in file order"
                )
                + (f"; rating >= {cfg.min_difficulty}" if cfg.min_difficulty is not None else "")
            )
        elif cfg.source == "generated" and cfg.require == "search":
            gen = {
                "rating_band": cfg.rating_band,
                "max_blanks": cfg.max_blanks,
                "easy_fraction": cfg.easy_fraction,
                "workers": os.cpu_count() or 1,
            }
            train_q, train_s, train_r = sudoku_solver.generate_search_puzzles(
                cfg.num_train, seed=2 * cfg.seed, **gen
            )
            test_q, test_s, test_r = sudoku_solver.generate_search_puzzles(
                cfg.num_test, seed=2 * cfg.seed + 1, **gen
            )
            ratings = {"train": train_r.tolist(), "test": test_r.tolist()}
            source = (
                f"sudoku_solver.generate_search_puzzles(rating_band={cfg.rating_band}, max_blanks="
                f"{cfg.max_blanks}, easy_fraction={cfg.easy_fraction}); train seed {2 * cfg.seed}, "
                f"test seed {2 * cfg.seed + 1}"
            )
        elif cfg.source == "generated":
            gen = {"num_blanks": cfg.num_blanks, "min_clues": cfg.min_clues, "require": cfg.require}
            train_q, train_s = sudoku_solver.generate_puzzles(
                cfg.num_train, seed=2 * cfg.seed, **gen
            )
            test_q, test_s = sudoku_solver.generate_puzzles(
                cfg.num_test, seed=2 * cfg.seed + 1, **gen
            )
            # A provenance label of the built metadata (pinned by builds_golden_test): it keeps the
            # generator's module name of the version it was written for.
            source = (
                f"sudoku_lib.generate_puzzles(num_blanks={cfg.num_blanks}, min_clues="
                f"{cfg.min_clues}, require={cfg.require!r}); train seed {2 * cfg.seed}, "
                f"test seed {2 * cfg.seed + 1}"
            )
        else:
            raise ValueError(f"unknown source {cfg.source!r}")
        if cfg.source == "generated":
            overlap = {g.tobytes() for g in train_s} & {g.tobytes() for g in test_s}
            if overlap:  # Astronomically unlikely; guards the train/test disjointness promise.
                raise RuntimeError(f"{len(overlap)} generated test grids also occur in train")
            train_rows = np.arange(cfg.num_train)

        n_train, n_test = len(train_q), len(test_q)
        puzzles_train = n_train * (cfg.num_aug + 1)
        meta = _static_metadata()
        meta.update(
            {
                "total_groups": {"train": n_train, "test": n_test},
                "total_puzzles": {"train": puzzles_train, "test": n_test},
                "mean_puzzle_examples": {"train": 1.0, "test": 1.0},
                "num_aug": cfg.num_aug,
                "seed": cfg.seed,
                "source": source,
                "description": (
                    "Tokens: pad 0, blank 1, digit d -> d+1; labels are the full solution. Each "
                    "training group is one base puzzle: its original (puzzle 0 of the group) then "
                    "num_aug shuffle_sudoku copies (docs/model.md#sudoku-extreme) seeded by (seed, base row)."
                ),
            }
        )
        if ratings is not None:
            # Backtrack rating (`sudoku_solver.rating`) of each base puzzle, by group index; the
            # shuffled copies of a training puzzle share its rating (a shuffle maps the search tree
            # onto an equal one only up to the branch-cell tie order, so the copies' own ratings
            # may differ slightly).
            meta["ratings"] = ratings
        self.info.metadata.update(meta)
        return {
            "train": self._generate_examples(train_q, train_s, train_rows, cfg.num_aug, cfg.seed),
            "test": self._generate_examples(test_q, test_s, np.arange(n_test), 0, cfg.seed),
        }

    def _generate_examples(self, questions, solutions, rows, num_aug, seed):
        """Yields (puzzle_index, example); the group's puzzles are contiguous puzzle indices."""
        per_group = num_aug + 1
        for g in range(len(questions)):
            qs, ss = sudoku_lib.augment_puzzle(questions[g], solutions[g], num_aug, seed, rows[g])
            inputs, labels = sudoku_task.encode(qs), sudoku_task.encode(ss)
            base = g * per_group
            for j in range(per_group):
                yield (
                    base + j,
                    {
                        "inputs": inputs[j],
                        "labels": labels[j],
                        "puzzle_identifier": 0,
                        "puzzle_index": base + j,
                        "group": g,
                    },
                )
