"""Helpers shared by the plot modules and by the report: metric columns and units, run labels, figures.

Accuracies are shown in percent (values logged as fractions are multiplied by 100). Figures are drawn with
the Agg canvas directly (no pyplot, no global backend switch) and written through tf.io.gfile, so an
output folder on gs:// works like a local one.
"""

from __future__ import annotations

import io
import posixpath

import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trm_tf.analysis import paper

_DPI = 120


def metric_column(metric: str = "exact_accuracy", which: str = "final") -> str:
    """Table column of an eval metric: `final_eval.<metric>` or `best_eval.<metric>`."""
    if which not in ("final", "best"):
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")
    return f"{which}_eval.{metric}"


def is_percent_metric(metric: str) -> bool:
    """Whether a metric is an accuracy-like fraction shown in percent."""
    return "accuracy" in metric or "pass@" in metric


def to_display(values, metric: str) -> np.ndarray:
    """Values in display units: accuracy fractions (all ≤ 1) become percent."""
    v = np.asarray(values, dtype=float)
    if is_percent_metric(metric) and np.nanmax(np.abs(v), initial=0.0) <= 1.0 + 1e-9:
        return v * 100.0
    return v


def metric_label(metric: str, which: str = "final") -> str:
    unit = " (%)" if is_percent_metric(metric) else ""
    return f"{which} eval {metric}{unit}"


def run_labels(df: pd.DataFrame) -> pd.Series:
    """Short unique run labels: experiment_id, plus the workdir name when ids repeat (seeds)."""
    ids = df["experiment_id"].astype(str) if "experiment_id" in df else df["run_name"].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any() and "run_name" in df:
        ids = ids.where(
            ~dup | (ids == df["run_name"]), ids + " [" + df["run_name"].astype(str) + "]"
        )
    return ids


def config_flag(v) -> bool | None:
    """A config boolean as True/False, or None when missing (numpy bools from pandas included)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return None


def numeric(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[col], errors="coerce")


def save_png(fig: Figure, out_dir: str, name: str) -> str:
    tf.io.gfile.makedirs(out_dir)
    path = posixpath.join(out_dir, f"{name}.png")
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=_DPI)  # Constrained layout already fits the labels.
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def new_figure(ncols: int = 1, width: float = 7.0, height: float = 4.6):
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
    return fig, axes


def reference_lines(ax, df: pd.DataFrame, metric: str) -> None:
    """Horizontal lines at the paper's numbers for the runs' datasets and mixers, when `metric` is the one
    the published figure measures (`paper.PAPER_METRICS`: the pooled ARC pass@2, not this checkpoint's)."""
    if "data.name" not in df:
        return
    mixers = (
        df["model.mlp_t"] if "model.mlp_t" in df else pd.Series([None] * len(df), index=df.index)
    )
    refs = []
    for name, mlp in zip(df["data.name"], mixers):
        ref = paper.reference_for(name, mlp, metric)
        if ref and ref not in refs:
            refs.append(ref)
    for ref, (color, ls) in zip(refs, [("0.3", (0, (5, 3))), ("tab:brown", (0, (1, 2)))] * 4):
        ax.axhline(ref[0], color=color, ls=ls, lw=1.1, label=f"{ref[1]}: {ref[0]}%")
