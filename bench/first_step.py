"""Benchmark: time to first step (process start -> first finished training step), fresh and resumed.

  python bench/first_step.py --data_dir=DIR [--repos=REPO_A,REPO_B] [--rounds=3]
      [--config=configs/e1_1_baseline.py:runlocal] [--dataset=sudoku_extreme/sub1000_aug1000]
  python bench/first_step.py --after_tfds_build [--repos=REPO_A,REPO_B] [--rounds=3] [--scratch=DIR]

For each round and each repository checkout in --repos (round-robin, so a load change on a shared machine
hits every checkout alike), runs that checkout's `launch.py` with --config (the CPU smoke model by default)
on --dataset in --data_dir, in a fresh workdir, for one training step (`--mode=train`, one step per loop,
a log line per step), and records the seconds from starting the process to its log line of step 1
("fresh": TF import, dataset metadata, reading the train split, XLA compilation and the step itself). Then
it runs the same workdir again for one more step, which restores the checkpoint of step 1, and records the
seconds to the log line of step 2 ("resume"). Prints one JSON line per run, then one per checkout with the
medians, the load averages and whether the fresh and resumed medians meet --target_s.

`--after_tfds_build` measures **the first launch after `tfds build`** (the command researchers are told to
run): for each checkout it writes synthetic Sudoku-Extreme CSVs (`build_sudoku.py`'s, --csv_rows train rows),
builds --dataset with that checkout's builder through the real CLI (`tfds build <checkout>/tfds_builders/
sudoku_extreme --config=... --manual_dir=... --data_dir=<scratch>/<k>`, one build per checkout, timed), and
records which files the build left. Before every round it deletes whatever a launch added to the data dir
since (the decoded cache a launch writes itself), so every "fresh" run is the first launch after the build,
and "resume" the second.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_sudoku  # noqa: E402
import common  # noqa: E402

# The JSON records it prints, in order: each build, each run, each checkout's summary.
RECORDS = ("first_step_build", "first_step_run", "first_step")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="", help="TFDS data dir holding --dataset")
    p.add_argument(
        "--after_tfds_build",
        action="store_true",
        help="build --dataset with each checkout's `tfds build` first (see the module docstring)",
    )
    p.add_argument("--scratch", default="", help="folder for the builds (default: a temporary one)")
    p.add_argument(
        "--csv_rows", type=int, default=5000, help="synthetic train CSV rows of the build"
    )
    p.add_argument("--repos", default=common.REPO, help="comma-separated checkouts to compare")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--config", default="configs/e1_1_baseline.py:runlocal")
    p.add_argument("--dataset", default="sudoku_extreme/sub1000_aug1000")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--target_s", type=float, default=20.0)
    p.add_argument("--timeout_s", type=float, default=600.0)
    args = p.parse_args(argv)
    if not args.data_dir and not args.after_tfds_build:
        p.error("give --data_dir, or --after_tfds_build")
    return args


def tfds_build(repo: str, args, manual_dir: str, data_dir: str) -> dict:
    """Builds --dataset into `data_dir` with `repo`'s builder through the `tfds build` CLI (timed)."""
    name, _, config = args.dataset.partition("/")
    tfds_cli = os.path.join(os.path.dirname(args.python), "tfds")
    cmd = [tfds_cli, "build", os.path.join(repo, "tfds_builders", name), f"--config={config}"]
    cmd += [f"--manual_dir={manual_dir}", f"--data_dir={data_dir}"]
    env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return {"command": " ".join(cmd), "build_s": round(time.perf_counter() - t0, 1)}


def files_under(folder: str) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs + [""]}


def restore(folder: str, built: set[str]) -> None:
    """Deletes what was added under `folder` since the build (deepest first)."""
    for path in sorted(files_under(folder) - built, key=len, reverse=True):
        if path.endswith(os.sep):
            os.rmdir(path)
        else:
            os.remove(path)


def time_to_step(cmd: list[str], cwd: str, step: int, timeout_s: float) -> float:
    """Seconds from starting `cmd` to its log line "step <step>/"; the process is then left to finish."""
    pattern = re.compile(rf"\bstep {step}/\d+ \|")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen, tail = None, []
    for line in proc.stderr:
        tail = (tail + [line])[-20:]
        if seen is None and pattern.search(line):
            seen = time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout_s:
            proc.kill()
            break
    if proc.wait() != 0 or seen is None:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{''.join(tail)}")
    return seen


def one_run(repo: str, args, workdir: str, data_dir: str) -> dict:
    """Fresh start (1 step) and resume (1 more step) of `repo`'s launch.py in `workdir`."""
    name, _, config = args.dataset.partition("/")
    flags = [
        f"--config={args.config}",
        f"--workdir={workdir}",
        "--mode=train",
        f"--config.data.name={name}",
        f"--config.data.config={config}",
        f"--config.data.data_dir={data_dir}",
        "--config.data.build_if_missing=False",
        "--config.train.steps_per_loop=1",
        "--config.train.log_every_steps=1",
    ]
    cmd = [args.python, "launch.py", *flags]
    fresh = time_to_step(cmd + ["--config.train.total_steps=1"], repo, 1, args.timeout_s)
    resume = time_to_step(cmd + ["--config.train.total_steps=2"], repo, 2, args.timeout_s)
    return {"repo": repo, "fresh_s": round(fresh, 2), "resume_s": round(resume, 2)}


def main(argv=None) -> None:
    """Round-robins the checkouts, prints a JSON line per run and a summary per checkout."""
    args = parse_args(argv)
    repos = [os.path.abspath(r) for r in args.repos.split(",") if r]
    load0 = common.loadavg()
    runs: dict[str, list[dict]] = {r: [] for r in repos}
    data_dirs = {r: args.data_dir for r in repos}
    builds: dict[str, dict] = {}
    scratch = args.scratch or tempfile.mkdtemp(prefix="trm_first_step_build_")
    if args.after_tfds_build:
        manual = os.path.join(scratch, "manual")
        os.makedirs(manual, exist_ok=True)
        build_sudoku.write_csvs(build_sudoku.epath.Path(manual), args.csv_rows, 2000)
        for k, repo in enumerate(repos):
            data_dirs[repo] = os.path.join(scratch, str(k))
            builds[repo] = tfds_build(repo, args, manual, data_dirs[repo])
            builds[repo]["files"] = files_under(data_dirs[repo])
            common.print_json(
                {"bench": "first_step_build", "repo": repo, "command": builds[repo]["command"]}
                | {"build_s": builds[repo]["build_s"], "loadavg": common.loadavg()}
            )
    for k in range(args.rounds):
        for repo in repos:
            if repo in builds:  # the state the build left: the next launch is the first one
                restore(data_dirs[repo], builds[repo]["files"])
            with tempfile.TemporaryDirectory(prefix="trm_first_step_") as tmp:
                rec = one_run(repo, args, os.path.join(tmp, "run"), data_dirs[repo])
            rec.update(round=k, loadavg=common.loadavg())
            runs[repo].append(rec)
            common.print_json({"bench": "first_step_run", **rec})
    for repo, recs in runs.items():
        fresh = statistics.median(r["fresh_s"] for r in recs)
        resume = statistics.median(r["resume_s"] for r in recs)
        common.print_json(
            {
                "bench": "first_step",
                "repo": repo,
                "config": args.config,
                "dataset": args.dataset,
                "after_tfds_build": args.after_tfds_build,
                "build_s": builds.get(repo, {}).get("build_s"),
                "rounds": args.rounds,
                "fresh_s_median": fresh,
                "resume_s_median": resume,
                "fresh_s": [r["fresh_s"] for r in recs],
                "resume_s": [r["resume_s"] for r in recs],
                "meets_target": max(fresh, resume) <= args.target_s,
                "target_s": args.target_s,
                "loadavg_start": load0,
                "loadavg_end": common.loadavg(),
                "machine": common.machine_info(),
            }
        )


if __name__ == "__main__":
    main()
