"""Reference numbers to compare runs against (docs/experiments.md#published-results).

All values are test accuracies in percent as published (Sudoku, Maze: exact accuracy; ARC: pass@2).
The paper's ARC pass@2 is the reference's logged `ARC/pass@2`: one evaluator per run that never clears
its votes, so each logged value pools every evaluation so far, each over the whole test split. A run here
logs that quantity as `ARC/pooled/pass@2` (equal to it when every evaluation covers every task, as in the
paper ARC configs) and this checkpoint's own votes as `ARC/pass@2`; only the former is compared with
the paper (`PAPER_METRICS`).
"""

from __future__ import annotations

import numpy as np

from trm_tf.evaluators.accuracy import AccuracyEvaluator
from trm_tf.evaluators.arc import ARCEvaluator

# (task, variant) -> (accuracy %, source). Paper claims (docs/experiments.md#published-results).
PAPER = {
    ("sudoku", "mlp"): (87.4, "TRM paper, MLP-T variant, 5M params"),
    ("sudoku", "attention"): (74.7, "TRM paper, attention variant, 7M params"),
    ("sudoku", "hrm"): (55.0, "HRM paper"),
    ("maze", "attention"): (85.3, "TRM paper (attention, H=3, L=4)"),
    ("maze", "hrm"): (74.5, "HRM paper"),
    ("arc1", "attention"): (44.6, "TRM paper, ARC-AGI-1 pass@2"),
    ("arc1", "hrm"): (40.3, "HRM paper, ARC-AGI-1 pass@2"),
    ("arc2", "attention"): (7.8, "TRM paper, ARC-AGI-2 pass@2"),
    ("arc2", "hrm"): (5.0, "HRM paper, ARC-AGI-2 pass@2"),
}

# Sudoku ablations recalled from the paper's table, not checked against it ("check before citing");
# shown with that caveat.
SUDOKU_ABLATIONS = {
    "no EMA": 79.9,
    "T=2, n=2": 73.7,
}

# Independent reproductions (docs/experiments.md#published-results), test split unless noted.
REPRODUCTIONS = {
    "sudoku": [
        ("alphaXiv REPORT.md, MLP, 50k epochs", 79.37),
        ("gaoxin492, MLP, global batch 4608", 84.80),
        ("CGAR paper baseline, MLP, full 423k test", 86.65),
        ("alphaXiv REPORT.md, attention, 60k epochs", 73.66),
    ],
    "maze": [("alphaXiv REPORT.md", 83.67), ("gaoxin492", 78.70)],
    "arc1": [("alphaXiv REPORT.md, H3/L4", 43.00)],
}


# The metric each task's published figure measures (its evaluator's headline): what the analysis
# compares with `PAPER`.
PAPER_METRICS = {
    "sudoku": AccuracyEvaluator.headline,
    "maze": AccuracyEvaluator.headline,
    "arc1": ARCEvaluator.headline,
    "arc2": ARCEvaluator.headline,
}


def headline_metric(data_names) -> str:
    """The metric to compare a group of runs with the paper: the pooled ARC pass@2 when every run is an
    ARC run, else `exact_accuracy` (the analysis's `--metric=auto`)."""
    tasks = {task_of(n) for n in data_names}
    metrics = {PAPER_METRICS[t] for t in tasks if t is not None}
    if len(metrics) == 1 and None not in tasks:
        return metrics.pop()
    return "exact_accuracy"


def task_of(data_name) -> str | None:
    """Maps a `data.name` (e.g. "sudoku_extreme", "maze_hard", "arc_agi_2") to a task key, or None."""
    if not isinstance(data_name, str):
        return None
    n = data_name.lower()
    if "sudoku" in n:
        return "sudoku"
    if "maze" in n:
        return "maze"
    if "arc" in n:
        return "arc2" if "2" in n else "arc1"
    return None


def reference_for(data_name, mlp_t, metric: str | None = None) -> tuple[float, str] | None:
    """The paper's accuracy (%) for a dataset and mixer (`model.mlp_t`), or None when not published
    (or when `metric` is given and is not the one the published figure measures, `PAPER_METRICS`)."""
    task = task_of(data_name)
    if task is None or (metric is not None and metric != PAPER_METRICS[task]):
        return None
    # numpy.bool_ (from a pandas column) is not `True`, hence bool().
    variant = "mlp" if isinstance(mlp_t, (bool, np.bool_)) and bool(mlp_t) else "attention"
    return PAPER.get((task, variant))
