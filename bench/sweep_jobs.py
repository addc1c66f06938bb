r"""Should a CPU sweep train its runs one at a time on every CPU (as `sweep.py` does) or several at once,
each pinned to its share of the CPUs? Throughput of both, round-robin.

  python bench/sweep_jobs.py --config=configs/pilot_cpu.py:baseline --steps=150 --rounds=2 \
      [--jobs=2] [--data_dir=DIR]

Each round trains the config for `--steps` steps once on all CPUs, then `--jobs` copies at once (seeds
1..N), each pinned (`sched_setaffinity`; TensorFlow sizes its thread pools to it) to a contiguous share of
the CPUs. A run's rate is the median examples/s of its logging windows after the first (which holds
compilation); a mode's figure is the sum over its concurrent runs. Prints one JSON line per round and
mode, then the medians. On the 2-core development machine one run on both cores was the faster
(BENCHMARKS.md), which is why `sweep.py` runs one run at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import loadavg, log, machine_info, print_json  # noqa: E402


def cpu_slots(jobs: int) -> list[set[int]]:
    """This process's CPUs cut into `jobs` contiguous shares (sizes differ by at most one)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not 1 <= jobs <= len(cpus):
        raise SystemExit(f"error: --jobs must be between 1 and the {len(cpus)} CPUs available")
    cuts = [len(cpus) * i // jobs for i in range(jobs + 1)]
    return [set(cpus[cuts[i] : cuts[i + 1]]) for i in range(jobs)]


def _rate(workdir: str) -> float:
    """Median examples/s of the run's training windows after the first."""
    rows = [json.loads(line) for line in Path(workdir, "metrics.jsonl").read_text().splitlines()]
    rates = [
        r["examples_per_s"] for r in rows if r.get("split") == "train" and "examples_per_s" in r
    ]
    if len(rates) < 2:
        raise SystemExit(f"error: {workdir} logged {len(rates)} windows; use more --steps")
    return statistics.median(rates[1:])


def _launch(args, workdir: str, seed: int, cpus) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "launch.py",
        f"--config={args.config}",
        f"--workdir={workdir}",
        f"--config.seed={seed}",
        f"--config.train.total_steps={args.steps}",
        f"--config.train.eval_every_steps={args.steps}",
        f"--config.train.checkpoint_every_steps={args.steps}",
        f"--config.eval.subset_size={args.eval_subset}",
    ]
    if args.data_dir:
        cmd.append(f"--config.data.data_dir={args.data_dir}")
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=None if cpus is None else (lambda: os.sched_setaffinity(0, cpus)),
    )


def measure(args, root: str, name: str, slots) -> dict:
    """Trains one copy per slot at once; returns the record of this mode."""
    procs = [
        (f"{root}/{name}-{i}", _launch(args, f"{root}/{name}-{i}", i + 1, cpus))
        for i, cpus in enumerate(slots)
    ]
    for wd, p in procs:
        if p.wait() != 0:
            raise SystemExit(
                f"error: the run in {wd} failed (exit {p.returncode}); see its launch.log"
            )
    rates = [_rate(wd) for wd, _ in procs]
    return {"runs": len(procs), "per_run_examples_per_s": rates, "examples_per_s": sum(rates)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/pilot_cpu.py:baseline")
    p.add_argument("--steps", type=int, default=150, help="steps per run (logged every 50)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--eval_subset", type=int, default=100, help="puzzles of the one evaluation")
    p.add_argument("--data_dir", default="")
    args = p.parse_args(argv)
    modes = {"one run, all CPUs": [None], f"{args.jobs} pinned runs": cpu_slots(args.jobs)}
    print_json({"machine": machine_info(), "config": args.config, "steps": args.steps})
    results = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as root:
        for r in range(args.rounds):
            for k, (mode, slots) in enumerate(modes.items()):
                log(f"round {r + 1}/{args.rounds}: {mode}")
                load = loadavg()
                rec = measure(args, root, f"r{r}m{k}", slots)
                rec.update(round=r, mode=mode, loadavg_before=load, loadavg_after=loadavg())
                print_json(rec)
                results[mode].append(rec["examples_per_s"])
    base = statistics.median(results["one run, all CPUs"])
    for mode, v in results.items():
        med = statistics.median(v)
        print_json({"mode": mode, "median_examples_per_s": med, "vs_one_run": med / base})
    return 0


if __name__ == "__main__":
    sys.exit(main())
