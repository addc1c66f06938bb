"""Benchmark: build `sudoku_extreme/sub1000_aug1000` (1,001,000 training examples) from synthetic CSVs.

The real Sudoku-Extreme CSVs are not reachable from the development machine, so a manual dir with a
`train.csv` (5,000 rows) and `test.csv` (2,000 rows) of valid generated puzzles stands in for them.
Prints one JSON line: train/test example counts, wall and CPU seconds of `download_and_prepare`,
examples/s, bytes on disk and shard counts.

Usage: python bench/build_sudoku.py [--config sub1000_aug1000] [--num_train_rows 5000] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tensorflow_datasets as tfds  # noqa: E402
from etils import epath  # noqa: E402

from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx  # noqa: E402
from tfds_builders.sudoku_extreme import sudoku_lib, sudoku_solver  # noqa: E402


def write_csvs(manual_dir: epath.Path, num_train: int, num_test: int) -> None:
    for split, n, seed in (("train", num_train, 100), ("test", num_test, 101)):
        q, s = sudoku_solver.generate_puzzles(n, num_blanks=(20, 30), seed=seed, require="unique")
        (manual_dir / f"{split}.csv").write_text(sudoku_lib.to_csv_text(q, s, source="bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="sub1000_aug1000")
    parser.add_argument("--num_train_rows", type=int, default=5000)
    parser.add_argument("--num_test_rows", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    args = parser.parse_args()
    tfds.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        root = epath.Path(tmp)
        manual = root / "manual"
        manual.mkdir()
        write_csvs(manual, args.num_train_rows, args.num_test_rows)
        data_dir = root / "data"
        builder = sx.Builder(config=args.config, data_dir=str(data_dir))
        dl_config = tfds.download.DownloadConfig(manual_dir=str(manual))
        load = os.getloadavg()[0]
        cpu0, t0 = time.process_time(), time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(builder.download_and_prepare, download_config=dl_config)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        else:
            builder.download_and_prepare(download_config=dl_config)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        splits = builder.info.splits
        n_train = splits["train"].num_examples
        size = sum(p.stat().length for p in epath.Path(builder.data_dir).iterdir())
        print(
            json.dumps(
                {
                    "config": args.config,
                    "train_examples": n_train,
                    "test_examples": splits["test"].num_examples,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "train_examples_per_s": round(n_train / wall),
                    "bytes_on_disk": size,
                    "train_shards": splits["train"].num_shards,
                    "test_shards": splits["test"].num_shards,
                    "loadavg_1min_at_start": round(load, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
