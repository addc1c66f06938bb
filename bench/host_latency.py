r"""Benchmark: the client's host overhead on a slice, simulated: the pod rehearsal under object-store and
remote-fetch latencies.

  python bench/host_latency.py [--repo=CHECKOUT] [--storage_ms=50 --rename_ms=100 --fetch_ms=3]
      [--data_dir=DIR] [--total_steps=16] [--report=costs.json]

Runs `--repo`'s launch.py (default: this checkout) on the pod rehearsal's shape — one client, four input
pipelines (MirroredStrategy over 4 logical CPUs, `runtime.input_pipelines=per_replica`), bfloat16, the
quickstart `:runlocal` recipe shrunk (the tests' tiny run, `tests/testing/launch.py`), a tiny generated
Sudoku — under this checkout's
`trm_tf/tools/host_costs.py`, which counts every storage call and device fetch of the client and sleeps in
each: `--storage_ms` per `tf.io.gfile` call or file opened (an object store's HTTPS round trip),
`--rename_ms` per rename or copy (a server-side copy plus a delete), `--fetch_ms` per tensor fetched to
the client (a blocking gRPC copy from another host). The workdir is on TensorFlow's in-memory `ram://`
filesystem, so the run takes its `gs://` code paths (read-modify-write appends, remote lock), while the
delays stand for the bucket. The cadence is E1.1's: a log line after every training loop
(`steps_per_loop = log_every_steps`), checkpoints and evaluations every few loops.

It prints one JSON line with the counts and the host overhead:

* **per training loop**: the client's main-thread time between two compiled training loops (from the end
  of one loop's compiled call to the start of the next, at boundaries without a checkpoint or
  evaluation), as a share of `--loop_s` (default 4.7 s: the cost model's E1.1 loop on a v4-8, 100 steps x
  47 ms);
* **per evaluation batch**: the main-thread time between two eval-step calls, as a share of `--eval_batch_s`
  (default: E1.1's eval batch on the same v4-8 by the cost model's rule — forward FLOPs x N_sup x eval batch
  at the train step's MFU: 47 ms x (forward / train FLOPs per supervision step = 0.60) x 16 x 768 / 768 =
  0.45 s).

Targets (issue #21): <= 2% of the training loop and <= 5% of evaluation time.

The default fetch cost, 3 ms, is a blocking remote copy of a small tensor as TF's eager client makes it:
one gRPC round trip to the host's eager service within a zone (a few hundred microseconds of network),
plus the service's queueing behind the ops already enqueued on that device, the device-to-host copy and
the protobuf (de)serialisation on both sides — of the order of a millisecond each; 2-5 ms is the range
the issue names, and the overhead grows linearly with it (counts x delay), so the JSON gives the counts to
rescale.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

INSTRUMENT = os.path.join(common.REPO, "trm_tf", "tools", "host_costs.py")
DATASET = "sudoku_extreme/host_latency"
STEPS_PER_LOOP = 2


_BUILD = """
import sys
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku
config = sudoku.SudokuConfig(
    name=sys.argv[2],
    description="Test-only generated config for bench/host_latency.py.",
    source="generated",
    seed=11,
    num_train=40,
    num_test=96,
    num_aug=3,
    num_blanks=(4, 8),
    require="singles",
)
sudoku.Builder(config=config, data_dir=sys.argv[1]).download_and_prepare()
"""


def build_data(data_dir: str, repo: str = common.REPO) -> str:
    """The tiny generated Sudoku (96 test puzzles in 4 shards), built once by `repo`'s builder (so
    whatever that checkout's build writes, e.g. a decoded cache, is there); returns its name."""
    if not os.path.exists(os.path.join(data_dir, *DATASET.split("/"))):
        env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, "-c", _BUILD, data_dir, DATASET.split("/")[1]]
        # TFDS's progress goes to stderr: stdout is for the JSON line
        subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=sys.stderr)
    return DATASET


def cadence(total_steps: int) -> tuple[str, ...]:
    """A log line after every loop of 2 steps; checkpoint and evaluation every 4 loops."""
    every = 4 * STEPS_PER_LOOP
    return (
        f"--config.train.total_steps={total_steps}",
        f"--config.train.steps_per_loop={STEPS_PER_LOOP}",
        f"--config.train.log_every_steps={STEPS_PER_LOOP}",
        f"--config.train.checkpoint_every_steps={every}",
        f"--config.train.eval_every_steps={every}",
        "--config.train.max_checkpoints=10",
        "--config.eval.subset_size=-1",
        "--mode=train_and_eval",
    )


def instrumented_cmd(
    repo: str,
    data_dir: str,
    workdir: str,
    report: str,
    total_steps: int,
    storage_ms: float = 0.0,
    rename_ms: float = 0.0,
    fetch_ms: float = 0.0,
    python: str = sys.executable,
    dataset: str = DATASET,
    extra: tuple[str, ...] = (),
    copy_workdir_to: str = "",
) -> list[str]:
    """The rehearsal run of checkout `repo` under the instrument (this checkout's host_costs.py);
    `extra` launch flags come last (a config field given twice takes the last value). With
    `copy_workdir_to`, the instrument copies the run directory there after the run."""
    common.setup_path_and_env()
    from tests.testing import launch  # noqa: PLC0415  (the tests' tiny run and rehearsal shape)

    return [
        python,
        INSTRUMENT,
        f"--repo={repo}",
        f"--report={report}",
        f"--storage_ms={storage_ms}",
        f"--rename_ms={rename_ms}",
        f"--fetch_ms={fetch_ms}",
        *([f"--copy_workdir_to={copy_workdir_to}"] if copy_workdir_to else []),
        "--",
        *launch.tiny_run_flags(data_dir, workdir, dataset, repo),
        *launch.overrides({**launch.REHEARSAL_DTYPE, **launch.ONE_CLIENT_FOUR_PIPELINES}),
        *cadence(total_steps),
        *extra,
    ]


def run(repo: str, data_dir: str, total_steps: int, timeout_s: float = 900.0, **kwargs) -> dict:
    """Runs the instrumented rehearsal of `repo` (workdir on ram://) and returns the instrument's report
    with the run's CPU seconds (`cpu_s`). `kwargs`: delays, `dataset`, `extra`, `copy_workdir_to` of
    `instrumented_cmd`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "costs.json")
        workdir = f"ram://host_latency_{os.getpid()}_{time.time_ns()}"
        cmd = instrumented_cmd(repo, data_dir, workdir, report, total_steps, **kwargs)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run(
            cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if out.returncode != 0 or not os.path.exists(report):
            raise RuntimeError(
                f"instrumented run of {repo} exited {out.returncode}:\n{out.stderr[-4000:]}"
            )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(report) as f:
            out = json.load(f)
        out["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
        return out


def model_eval(loop_s: float, steps_per_loop: int = 100) -> tuple[float, int]:
    """E1.1's eval batch time on the cost model's slice (see the module docstring), from its loop time,
    and its batches per full evaluation of the Sudoku test set."""
    common.setup_path_and_env()
    from bench import cost_model  # noqa: PLC0415
    from trm_tf.data.datasets import dataset_shapes  # noqa: PLC0415
    from trm_tf.models import build_model  # noqa: PLC0415
    from trm_tf.models.flops import flops_per_example  # noqa: PLC0415

    c = cost_model.load_config("configs/e1_1_baseline.py", None)
    dataset = f"{c.data.name}/{c.data.config}"
    seq, vocab, _ = dataset_shapes(dataset)
    model = build_model(c.model, vocab_size=vocab, seq_len=seq, num_puzzle_identifiers=1)
    forward = flops_per_example(model, train=False) / flops_per_example(model, train=True)
    n_sup = c.eval.halt_max_steps or c.act.halt_max_steps
    batches = c.eval.global_batch_size / c.train.global_batch_size
    n_test = cost_model.dataset_sizes(dataset)[2]
    eval_batch_s = loop_s / steps_per_loop * forward * n_sup * batches
    return eval_batch_s, -(-n_test // c.eval.global_batch_size)


def overhead(report: dict, loop_s: float, eval_batch_s: float, full_eval_batches: int = 0) -> dict:
    """Counts per plain loop boundary and per eval batch, and their host time as shares; with
    `full_eval_batches`, also an evaluation's fixed host time (before its first batch and after its
    last: input iterator, EMA swaps, the evaluators' results) over a full evaluation of that many
    batches."""
    loops = report["loops"]
    plain = [b for b in loops["boundaries"] if b["plain"]]
    evals = report["evals"]["evaluations"]
    # every eval batch but each evaluation's last (whose segment also holds the evaluators' results)
    batch_host = [s for e in evals for s in e["host_per_batch_s"][:-1]]
    per_batch = [e["per_batch"] for e in evals if e["per_batch"]]
    loop_host = statistics.median(b["host_s"] for b in plain) if plain else float("nan")
    eval_host = statistics.median(batch_host) if batch_host else float("nan")
    fixed = (
        statistics.median(e["setup_s"] + e["host_per_batch_s"][-1] for e in evals) if evals else 0
    )
    # the part of it spent in storage calls and fetches (the simulated latency); the rest is CPU work
    io = [
        sum(
            e[k][f"{c}_s_main"]
            for k in ("setup", "last_batch_and_results")
            for c in ("storage", "fetch")
        )
        for e in evals
    ]
    fixed_io = statistics.median(io) if io else 0.0
    full = full_eval_batches * eval_batch_s
    return {
        "delays_ms": report["delays_ms"],
        "loops": loops["count"],
        "plain_boundaries": len(plain),
        "per_loop": {
            "storage_main": loops["per_plain_boundary"].get("storage_main"),
            "storage_other": loops["per_plain_boundary"].get("storage_other"),
            "fetch_main": loops["per_plain_boundary"].get("fetch_main"),
            "host_s_median": round(loop_host, 4),
            "share_of_loop": round(loop_host / loop_s, 4),
            "target": 0.02,
        },
        "per_eval_batch": {
            "fetch_main": statistics.fmean(p["fetch_main"] for p in per_batch)
            if per_batch
            else None,
            "storage_main": statistics.fmean(p["storage_main"] for p in per_batch)
            if per_batch
            else None,
            "host_s_median": round(eval_host, 4),
            "share_of_eval": round(eval_host / eval_batch_s, 4),
            "target": 0.05,
        },
        "per_evaluation": {
            "fixed_host_s": round(fixed, 3),
            "fixed_io_s": round(fixed_io, 3),
            "full_eval_batches": full_eval_batches,
            "share_of_full_eval": round((fixed + full_eval_batches * eval_host) / full, 4)
            if full
            else None,
        },
        "loop_s": loop_s,
        "eval_batch_s": round(eval_batch_s, 4),
        "eval_batches": sum(e["batches"] for e in evals),
        "startup_s": round(report["phases"]["startup"]["wall_s"], 2),
        "cpu_s": report.get("cpu_s"),
        "wall_s": round(report["wall_s"], 2),
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=common.REPO, help="the checkout to measure")
    p.add_argument("--storage_ms", type=float, default=50.0)
    p.add_argument("--rename_ms", type=float, default=100.0)
    p.add_argument("--fetch_ms", type=float, default=3.0)
    p.add_argument("--loop_s", type=float, default=4.7, help="training loop time to compare with")
    p.add_argument("--eval_batch_s", type=float, default=0.0, help="0: E1.1's by the cost model")
    p.add_argument("--total_steps", type=int, default=16)
    p.add_argument(
        "--data_dir", default="", help="where to build the tiny dataset (default: a temp dir)"
    )
    p.add_argument("--report", default="", help="also write the instrument's full report here")
    p.add_argument("--timeout_s", type=float, default=900.0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        build_data(data_dir, os.path.abspath(args.repo))
        load = common.loadavg()
        t0 = time.perf_counter()
        report = run(
            os.path.abspath(args.repo),
            data_dir,
            args.total_steps,
            args.timeout_s,
            storage_ms=args.storage_ms,
            rename_ms=args.rename_ms,
            fetch_ms=args.fetch_ms,
        )
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    eval_batch_s, full_batches = model_eval(args.loop_s)
    eval_batch_s = args.eval_batch_s or eval_batch_s
    figures = overhead(report, args.loop_s, eval_batch_s, full_batches)
    record = {"repo": os.path.abspath(args.repo), **figures}
    record.update(
        run_s=round(time.perf_counter() - t0, 1), load_before=load, load_after=common.loadavg()
    )
    common.print_json(record)


if __name__ == "__main__":
    main()
