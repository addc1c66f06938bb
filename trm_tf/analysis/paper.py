"""Reference numbers to compare runs against (docs/experiments.md#published-results).

All values are test accuracies in percent as published (Sudoku, Maze: exact accuracy; ARC: pass@2).
"""

from __future__ import annotations

import numpy as np

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


def reference_for(data_name, mlp_t) -> tuple[float, str] | None:
    """The paper's accuracy (%) for a dataset and mixer (`model.mlp_t`), or None when not published."""
    task = task_of(data_name)
    if task is None:
        return None
    # numpy.bool_ (from a pandas column) is not `True`, hence bool().
    variant = "mlp" if isinstance(mlp_t, (bool, np.bool_)) and bool(mlp_t) else "attention"
    return PAPER.get((task, variant))
