"""Measures build time and on-disk size of the ARC-AGI and Maze-Hard TFDS datasets.

Prints one JSON line per build: config, wall and process CPU seconds, examples per split, shards, bytes
on disk, load average, plus a check that `info.metadata` is readable from a fresh process without the
builder code. Example (from the repo root):

    TF_CPP_MIN_LOG_LEVEL=3 python bench/build_arc_maze.py \
        --arc_configs arc1_aug0,arc1_aug100 --arc_dir ARC_JSON_DIR --data_dir /tmp/bench_tfds

where ARC_JSON_DIR holds the Kaggle `arc-agi_*_{challenges,solutions}.json` files.

Maze: the `hard` config when --maze_csv_dir holds train.csv/test.csv, else 1000 + 1000 generated mazes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TFDS_DISABLE_PROGRESS_BAR", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tensorflow_datasets as tfds  # noqa: E402
from etils import epath  # noqa: E402

from tfds_builders.arc_agi import arc_agi_dataset_builder as arc_b  # noqa: E402
from tfds_builders.maze_hard import maze_hard_dataset_builder as maze_b  # noqa: E402

_FRESH_READ = """
import json, sys
import tensorflow_datasets as tfds
b = tfds.builder(sys.argv[1], data_dir=sys.argv[2])
m = b.info.metadata
print(json.dumps({"type": type(b).__name__, "num_puzzle_identifiers": m["num_puzzle_identifiers"],
                  "seq_len": m["seq_len"], "total_groups": m["total_groups"]}))
"""


def _dir_bytes(path: epath.Path) -> int:
    return sum(f.stat().length for f in path.iterdir() if f.is_file())


def _build(builder, manual_dir: str | None) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    splits = builder.info.splits
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            _FRESH_READ,
            f"{builder.name}/{builder.builder_config.name}",
            str(builder.data_dir).rsplit(f"/{builder.name}/", 1)[0],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "dataset": f"{builder.name}/{builder.builder_config.name}",
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "examples": {s: splits[s].num_examples for s in splits},
        "shards": {s: splits[s].num_shards for s in splits},
        "bytes_on_disk": _dir_bytes(epath.Path(builder.data_dir)),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "fresh_process_metadata": (
            json.loads(fresh.stdout.strip().splitlines()[-1])
            if fresh.returncode == 0
            else fresh.stderr[-300:]
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arc_configs", default="arc1_aug0,arc1_aug100")
    p.add_argument("--arc_dir", required=True, help="folder of the Kaggle arc-agi_*.json files")
    p.add_argument("--maze_csv_dir", default="")
    p.add_argument("--data_dir", default="/tmp/bench_tfds")
    p.add_argument("--skip_maze", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the built datasets")
    args = p.parse_args()
    tfds.disable_progress_bar()
    for cfg in [c for c in args.arc_configs.split(",") if c]:
        shutil.rmtree(os.path.join(args.data_dir, "arc_agi", cfg), ignore_errors=True)
        builder = arc_b.Builder(config=cfg, data_dir=args.data_dir)
        rec = _build(builder, args.arc_dir)
        rec["num_puzzle_identifiers"] = builder.info.metadata["num_puzzle_identifiers"]
        print(json.dumps(rec), flush=True)
        if not args.keep:
            shutil.rmtree(os.path.join(args.data_dir, "arc_agi", cfg), ignore_errors=True)
    if args.skip_maze:
        return
    csv_dir = epath.Path(args.maze_csv_dir) if args.maze_csv_dir else None
    if csv_dir and (csv_dir / "train.csv").exists() and (csv_dir / "test.csv").exists():
        config, manual = "hard", str(csv_dir)
    else:
        config = maze_b.MazeConfig(
            name="generated_1000_1000",
            description="bench",
            source="generated",
            num_train=1000,
            num_test=1000,
        )
        manual = None
    shutil.rmtree(os.path.join(args.data_dir, "maze_hard"), ignore_errors=True)
    print(
        json.dumps(_build(maze_b.Builder(config=config, data_dir=args.data_dir), manual)),
        flush=True,
    )
    if not args.keep:
        shutil.rmtree(os.path.join(args.data_dir, "maze_hard"), ignore_errors=True)


if __name__ == "__main__":
    main()
