"""Backtrack-rating distribution of a search-needing Sudoku config (docs/datasets.md#ratings).

python -m tfds_builders.sudoku_extreme.ratings generated_extreme_lite [--data_dir=DIR]

Reads the per-puzzle ratings from the built config's metadata when `--data_dir` holds a build, else
generates the config's puzzles (same seeds, so the same ratings) without writing anything. Prints, per
split, the count, mean, quantiles and a histogram of `sudoku_solver.rating`, and the blanks per puzzle
when the puzzles were generated here.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from tfds_builders import builder_utils
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx
from tfds_builders.sudoku_extreme import sudoku_solver

# Histogram bins of the rating: [lo, hi] inclusive, hi None = open.
BINS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 19), (20, 49), (50, None))
QUANTILES = (25, 50, 75, 90, 99)


def _config(name: str) -> sx.SudokuConfig:
    for c in sx.Builder.BUILDER_CONFIGS:
        if c.name == name:
            if c.require != "search":
                break
            return c
    search = [c.name for c in sx.Builder.BUILDER_CONFIGS if c.require == "search"]
    raise SystemExit(f"{name!r} is not a search-needing Sudoku config; one of {search}")


def split_ratings(name: str, data_dir: str | None = None) -> tuple[dict, dict | None]:
    """({split: ratings}, {split: blanks} or None): from the build's metadata in `data_dir` when there
    is one, else generated (blanks are known only then)."""
    cfg = _config(name)
    if data_dir:
        try:
            meta = builder_utils.read_metadata(data_dir, f"sudoku_extreme/{name}")
        except FileNotFoundError:
            meta = None
        if meta and "ratings" in meta:
            return {s: np.asarray(r, np.int64) for s, r in meta["ratings"].items()}, None
    ratings, blanks = {}, {}
    gen = {
        "rating_band": cfg.rating_band,
        "max_blanks": cfg.max_blanks,
        "easy_fraction": cfg.easy_fraction,
        "workers": os.cpu_count() or 1,
    }
    for split, n, seed in (
        ("train", cfg.num_train, 2 * cfg.seed),
        ("test", cfg.num_test, 2 * cfg.seed + 1),
    ):
        q, _, r = sudoku_solver.generate_search_puzzles(n, seed=seed, **gen)
        ratings[split], blanks[split] = r.astype(np.int64), (q == 0).sum(1)
    return ratings, blanks


def summary_lines(ratings: dict, blanks: dict | None) -> list[str]:
    """The printed table: one row per split."""
    head = ["split", "n", "mean"] + [f"p{q}" for q in QUANTILES] + ["max"]
    head += [f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi else f"{lo}+") for lo, hi in BINS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split in ("train", "test"):
        r = ratings[split]
        row = [split, str(len(r)), f"{r.mean():.2f}"]
        row += [f"{np.percentile(r, q, method='lower'):g}" for q in QUANTILES] + [str(int(r.max()))]
        for lo, hi in BINS:
            k = int(((r >= lo) & (r <= (hi if hi is not None else np.inf))).sum())
            row.append(f"{100 * k / len(r):.1f}%")
        lines.append("| " + " | ".join(row) + " |")
    if blanks:
        for split in ("train", "test"):
            b = blanks[split]
            lines.append(
                f"blanks ({split}): mean {b.mean():.1f}, min {b.min()}, median {np.median(b):g}, "
                f"max {b.max()}"
            )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a search-needing config, e.g. generated_extreme_lite")
    parser.add_argument("--data_dir", default="", help="read the ratings of this build if present")
    a = parser.parse_args(argv)
    ratings, blanks = split_ratings(a.config, a.data_dir or None)
    print(f"sudoku_extreme/{a.config}: backtrack rating (sudoku_solver.rating)")
    print("\n".join(summary_lines(ratings, blanks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
