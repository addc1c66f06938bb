"""bench/sweep_jobs.py's arithmetic: the CPU shares and a run's rate (its windows after the first)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import sweep_jobs  # noqa: E402


def test_cpu_shares_are_contiguous_disjoint_and_cover_every_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    for jobs in range(1, len(cpus) + 1):
        slots = sweep_jobs.cpu_slots(jobs)
        assert len(slots) == jobs and sorted(c for s in slots for c in s) == cpus
        assert max(map(len, slots)) - min(map(len, slots)) <= 1
    with pytest.raises(SystemExit, match="between 1 and"):
        sweep_jobs.cpu_slots(len(cpus) + 1)


def test_rate_is_the_median_window_after_the_first(tmp_path):
    rows = [
        {"split": "train", "step": 50, "examples_per_s": 10.0},  # holds compilation
        {"split": "train", "step": 100, "examples_per_s": 60.0},
        {"split": "eval", "step": 100, "exact_accuracy": 0.1},
        {"split": "train", "step": 150, "examples_per_s": 70.0},
        {"split": "train", "step": 200, "examples_per_s": 64.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert sweep_jobs._rate(str(tmp_path)) == 64.0
    (tmp_path / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(SystemExit, match="logged 1 windows"):
        sweep_jobs._rate(str(tmp_path))
