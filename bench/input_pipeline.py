"""Benchmark: examples/s of the tf.data input pipelines (training sampler and padded eval stream).

  python bench/input_pipeline.py --examples=1001000 --batch=768 [--data_dir=DIR] [--windows=7]
      [--window_batches=100] [--arc_name=maze_hard/generated] [--skip_arc]

1. Sudoku: builds (once per --data_dir) a generated Sudoku TFDS dataset of about --examples training examples
   with the repository's builder: num_train = examples / (1 + num_aug) base puzzles, each with --num_aug
   shuffled copies (1000 x (1 + 1000) = 1,001,000 like the paper's sub1000_aug1000), plus --num_test puzzles.
2. Times `input_pipeline.make_train_dataset` at --batch: the one-off set-up (time to the first batch: reading
   the host's TFRecords into one in-memory element, building the sampler's tables in-graph), then after
   --warmup_batches, --windows windows of --window_batches batches pulled from the iterator; the figure is the median window's examples/s (tf.data autotune is off inside the
   pipeline; prefetch is the pipeline's default). A breakdown times the stages alone: the sampler's index
   stream, index stream + gather map (no prefetch), and the full pipeline, so a miss can be located.
3. Times `make_eval_dataset` the same way (full passes over the padded test set).
4. The same for 900-token sequences: an `arc_agi/*` or `maze_hard/*` dataset already built in --data_dir,
   else `maze_hard/generated` built with `trm_tf.data.datasets.build_dataset`.

Prints one JSON line per dataset with the load averages before and after and process CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_path_and_env()


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=1_001_000, help="Sudoku training examples")
    p.add_argument("--num_aug", type=int, default=1000, help="shuffled copies per base puzzle")
    p.add_argument("--num_test", type=int, default=10_000, help="Sudoku test puzzles")
    p.add_argument("--batch", type=int, default=768)
    p.add_argument("--data_dir", default="", help="TFDS dir to build into / reuse (default: temp)")
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--window_batches", type=int, default=100)
    p.add_argument("--warmup_batches", type=int, default=20)
    p.add_argument("--arc_name", default="", help="900-token dataset (default: found or maze_hard)")
    p.add_argument("--manual_dir", default="", help="source files for --arc_name (arc_agi)")
    p.add_argument("--skip_arc", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def time_windows(iterator, batch: int, warmup: int, windows: int, per_window: int) -> dict:
    """Median examples/s over `windows` windows of `per_window` batches, after `warmup` batches."""
    for _ in range(warmup):
        next(iterator)
    rates, cpu = [], []
    for _ in range(windows):
        c0, t0 = common.cpu_seconds(), time.perf_counter()
        for _ in range(per_window):
            next(iterator)
        dt = time.perf_counter() - t0
        rates.append(per_window * batch / dt)
        cpu.append((common.cpu_seconds() - c0) / dt)
    return {
        "examples_per_s": round(statistics.median(rates)),
        "examples_per_s_min": round(min(rates)),
        "examples_per_s_max": round(max(rates)),
        "cpu_util": round(statistics.median(cpu), 2),
        "windows": windows,
        "batches_per_window": per_window,
    }


def bench_train(tf, spec, args) -> dict:
    """Time to the first batch, then steady-state examples/s of make_train_dataset and of its stages alone."""
    from trm_tf.data import input_pipeline as ip

    b = args.batch
    # The pipeline reads the host's TFRecords when its first element is pulled (not when it is built), so
    # the one-off set-up is the time to the first batch.
    t0 = time.perf_counter()
    ds = ip.make_train_dataset(spec, b, args.seed)
    iterator = iter(ds)
    next(iterator)
    setup_s = time.perf_counter() - t0
    w = dict(warmup=args.warmup_batches, windows=args.windows, per_window=args.window_batches)
    full = time_windows(iterator, b, **w)

    # Stages alone (same ops as the pipeline, on eager copies of the host's examples), to show where the
    # time goes: reading everything into one element, the sampler's tables, its index stream, + gather.
    t0 = time.perf_counter()
    from tfds_builders.builder_utils import CORE_FEATURES
    from trm_tf.data.records import read_records
    from trm_tf.data.sampler import GroupSampler

    records = read_records(spec, "train", CORE_FEATURES).batch(1 << 40)
    data = next(iter(records))
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sampler = GroupSampler(data["group"], data["puzzle_index"], args.seed, 0)
    sampler_s = time.perf_counter() - t0
    opts = tf.data.Options()
    opts.autotune.enabled = False
    idx = sampler.index_dataset(b).with_options(opts)
    index_only = time_windows(iter(idx), b, **w)

    def gather(index):
        lab = tf.cast(tf.gather(data["labels"], index), tf.int32)
        return {
            "inputs": tf.cast(tf.gather(data["inputs"], index), tf.int32),
            "labels": tf.where(lab == spec.ignore_label_id, -100, lab),
            "puzzle_identifiers": tf.gather(data["puzzle_identifier"], index),
        }

    gathered = time_windows(iter(idx.map(gather)), b, **w)
    return {
        "setup_s": round(setup_s, 2),
        "read_split_s": round(read_s, 2),
        "sampler_init_s": round(sampler_s, 3),
        "groups": int(sampler.num_groups),
        "examples_per_epoch": int(sampler.examples_per_epoch),
        "train": full,
        "stage_index_stream": index_only,
        "stage_index_plus_gather_no_prefetch": gathered,
    }


def bench_eval(spec, args) -> dict:
    """Set-up time and examples/s of full passes over make_eval_dataset (padded, masked)."""
    from trm_tf.data.eval_input import make_eval_dataset

    t0 = time.perf_counter()
    ds, steps = make_eval_dataset(spec, args.batch)
    setup_s = time.perf_counter() - t0
    rates = []
    passes = max(3, args.windows)
    for _ in range(passes):
        t0 = time.perf_counter()
        n = 0
        for _batch in ds:
            n += 1
        rates.append(n * args.batch / (time.perf_counter() - t0))
    return {
        "setup_s": round(setup_s, 2),
        "steps": steps,
        "padded_examples": steps * args.batch,
        "examples_per_s": round(statistics.median(rates)),
        "passes": passes,
    }


def find_900_token_dataset(data_dir: str) -> str:
    """An already built arc_agi/* or maze_hard/* config in data_dir, else ''."""
    for name in ("arc_agi", "maze_hard"):
        root = os.path.join(data_dir, name)
        if os.path.isdir(root):
            for cfg in sorted(os.listdir(root)):
                if os.path.isdir(os.path.join(root, cfg)) and not cfg.startswith("."):
                    return f"{name}/{cfg}"
    return ""


def _sudoku_spec(args, data_dir: str):
    """Builds (or reuses) the generated Sudoku config of the flags' size; (spec, build record)."""
    from tests.testing.tiny_datasets import build_tiny_sudoku
    from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx

    num_train = max(1, round(args.examples / (1 + args.num_aug)))
    cfg = sx.SudokuConfig(
        name=f"bench_n{num_train}_aug{args.num_aug}_t{args.num_test}",
        description="Benchmark-only generated config (input pipeline throughput).",
        source="generated",
        seed=12,
        num_train=num_train,
        num_test=args.num_test,
        num_aug=args.num_aug,
        num_blanks=(10, 20),
        require="singles",
    )
    t0, c0 = time.perf_counter(), common.cpu_seconds()
    built = not os.path.isdir(os.path.join(data_dir, "sudoku_extreme", cfg.name))
    common.log(f"{'building' if built else 'reusing'} sudoku_extreme/{cfg.name} in {data_dir}")
    spec = build_tiny_sudoku(data_dir, cfg)
    build = {"built_now": built, "wall_s": round(time.perf_counter() - t0, 1)}
    if built:
        build["cpu_s"] = round(common.cpu_seconds() - c0, 1)
    return spec, build


def _long_sequence_spec(args, data_dir: str):
    """The 900-token dataset (--arc_name, one found in data_dir, or a generated maze); (spec, build)."""
    from trm_tf.data import datasets

    name = args.arc_name or find_900_token_dataset(data_dir) or "maze_hard/generated"
    t0 = time.perf_counter()
    try:
        spec, built = datasets.load_spec(name, data_dir), False
    except datasets.DatasetMissingError:
        common.log(f"building {name} in {data_dir}")
        spec, built = datasets.build_dataset(name, data_dir, args.manual_dir), True
    if spec.num_train_examples < args.batch:
        raise SystemExit(f"{name} has {spec.num_train_examples} examples < batch {args.batch}")
    return spec, {"built_now": built, "wall_s": round(time.perf_counter() - t0, 1)}


def _timed_record(tf, spec, args, build: dict) -> dict:
    """Times the train and eval pipelines of `spec`: the JSON record of one dataset."""
    common.log(f"timing the {spec.name} pipelines")
    load1, c0 = common.loadavg(), common.cpu_seconds()
    return {
        "bench": "input_pipeline",
        "dataset": spec.name,
        "seq_len": spec.seq_len,
        "num_train_examples": spec.num_train_examples,
        "num_test_examples": spec.num_test_examples,
        "batch": args.batch,
        "build": build,
        **bench_train(tf, spec, args),
        "eval": bench_eval(spec, args),
        "cpu_s": round(common.cpu_seconds() - c0, 1),
        "loadavg_timed_start": load1,
        "loadavg_end": common.loadavg(),
        "machine": common.machine_info(),
    }


def main(argv=None) -> None:
    """Builds or reuses the datasets and prints one JSON line per dataset."""
    args = parse_args(argv)
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tf.get_logger().setLevel("ERROR")
    tfds.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="trm_bench_pipe_") as tmp:
        data_dir = args.data_dir or tmp
        load0 = common.loadavg()
        spec, build = _sudoku_spec(args, data_dir)
        rec = _timed_record(tf, spec, args, build)
        rec.update(target_examples_per_s=100_000, loadavg_start=load0, tf_version=tf.__version__)
        rec["meets_target"] = rec["train"]["examples_per_s"] >= 100_000
        common.print_json(rec)
        if not args.skip_arc:
            spec, build = _long_sequence_spec(args, data_dir)
            common.print_json(_timed_record(tf, spec, args, build))


if __name__ == "__main__":
    main()
