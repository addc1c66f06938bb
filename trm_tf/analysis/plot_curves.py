"""Curve plots: an eval metric and a training loss over optimizer steps, for any group of runs, for EMA
on/off runs and for MLP-T vs self-attention runs.

Curves come from the caller (`curves=`) or are read from each run's logs with `scalars.load_scalars`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from trm_tf.analysis import scalars, seeds
from trm_tf.analysis.plot_common import (
    config_flag,
    is_percent_metric,
    new_figure,
    reference_lines,
    run_labels,
    save_png,
    to_display,
)


def _curves_for(df, split, tag, curves):
    """{workdir: DataFrame(step, value)}: given curves first, else read from the run (quietly)."""
    out = {}
    for w in df["workdir"]:
        if curves is not None and w in curves:
            out[w] = curves[w]
        else:
            out[w] = scalars.load_scalars(w, split, tag, warn=False)
    return out


def plot_eval_curves(
    df: pd.DataFrame,
    out_dir: str,
    metric: str = "exact_accuracy",
    *,
    curves: Mapping[str, pd.DataFrame] | None = None,
    style_by: Callable[[pd.Series], str] | None = None,
    label_by: Callable[[pd.Series], str] | None = None,
    name: str = "eval_curves",
    title: str = "Eval curves",
    train_tag: str | tuple[str, ...] | None = ("lm_loss", "loss"),
    train_curves: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """Eval metric vs optimizer step for every run (left), and a training loss (right). Runs that are
    seeds of one arm (`seeds.arm_groups`) are drawn as one line, their mean, with the 95% t interval of
    the mean as a band.

    Args:
      df: `load_runs` table.
      out_dir: Output folder.
      metric: Eval tag for the left panel.
      curves: {workdir: DataFrame(step, value)} eval curves; missing ones are loaded with `load_scalars`.
      style_by: Maps a table row to a group name; each group gets its own line style.
      label_by: Maps a table row to a legend suffix (default: the `style_by` group).
      name: PNG file name without extension.
      title: Figure title.
      train_tag: Training tag for the right panel, or candidates tried in order until one has data
        (None: single panel).
      train_curves: Like `curves`, for the training tag.

    Returns:
      Path of `<name>.png`.
    """
    if df.empty:
        raise ValueError("no runs")
    ev = _curves_for(df, "eval", metric, curves)
    if all(c.empty for c in ev.values()):
        raise ValueError(f"no run has eval/{metric} scalars")
    train_tag, tr = _first_train_curves(df, train_tag, train_curves)
    fig, axes = new_figure(ncols=2 if tr else 1, width=6.4 if tr else 7.0)
    groups, suffix, styles = _line_styles(df, style_by, label_by)
    labels = run_labels(df)
    # One line per run, or per arm when the runs hold seeds: the seeds' mean, 95% t interval as a band.
    if seeds.has_seed_groups(df):
        lines = [
            (f"{arm} (mean of n={len(idx)})", [df.index.get_loc(i) for i in idx])
            for arm, idx in seeds.arm_groups(df)
        ]
    else:
        lines = [(labels[idx], [i]) for i, idx in enumerate(df.index)]
    for j, (lab, members) in enumerate(lines):
        i = members[0]
        lab += f" ({suffix[i]})" if suffix[i] is not None else ""
        color, ls = f"C{j % 10}", styles[groups[i]]
        dirs = [df["workdir"].iloc[m] for m in members]
        c = seeds.mean_curve([ev[w] for w in dirs])
        if not c.empty:
            y, err = to_display(c["mean"], metric), to_display(c["err"], metric)
            if is_percent_metric(metric) and np.nanmax(np.abs(c["mean"]), initial=0) <= 1.0:
                err = np.asarray(c["err"], dtype=float) * 100.0  # the band in the mean's units
            axes[0].plot(c["step"], y, ls=ls, color=color, marker="o", ms=3, lw=1.6, label=lab)
            if len(members) > 1:
                axes[0].fill_between(c["step"], y - err, y + err, color=color, alpha=0.18)
        t = seeds.mean_curve([tr[w] for w in dirs]) if tr else None
        if t is not None and not t.empty:
            axes[1].plot(t["step"], t["mean"], ls=ls, color=color, lw=1.2)
    reference_lines(axes[0], df, metric)
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel(f"eval {metric}" + (" (%)" if is_percent_metric(metric) else ""))
    axes[0].legend(fontsize=7.5, loc="best")
    if tr:
        axes[0].set_title(f"eval {metric}")
        axes[1].set(xlabel="optimizer step", ylabel=f"train {train_tag}", yscale="log")
        axes[1].set_title(f"train {train_tag} (halted samples only)")
    fig.suptitle(title)
    return save_png(fig, out_dir, name)


def _line_styles(df, style_by, label_by):
    """Per row: its style group and legend suffix; per group: its line style."""
    groups = [style_by(r) for _, r in df.iterrows()] if style_by else [None] * len(df)
    suffix = [label_by(r) for _, r in df.iterrows()] if label_by else groups
    styles = {g: s for g, s in zip(dict.fromkeys(groups), ["-", "--", ":", "-."] * 8)}
    return groups, suffix, styles


def _first_train_curves(df, train_tag, train_curves):
    """(tag, curves) of the first candidate training tag some run has data for, else (None, None)."""
    for tag in (train_tag,) if isinstance(train_tag, str) else (train_tag or ()):
        tr = _curves_for(df, "train", tag, train_curves)
        if not all(c.empty for c in tr.values()):
            return tag, tr
    return None, None


def plot_ema_curves(
    df: pd.DataFrame,
    out_dir: str,
    metric: str = "exact_accuracy",
    curves: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """Eval curves of EMA on/off runs (Exp 8 / E2.1): solid = EMA on (rate in the legend), dashed = off.

    Returns:
      Path of `ema_curves.png`.
    """

    def on_off(r):
        return "EMA off" if config_flag(r.get("optim.ema")) is False else "EMA on"

    def label(r):  # Line style by on/off only; the rate goes in the label.
        rate = pd.to_numeric(r.get("optim.ema_rate"), errors="coerce")
        if on_off(r) == "EMA on" and np.isfinite(rate):
            return f"EMA {rate:g}"
        return on_off(r)

    return plot_eval_curves(
        df,
        out_dir,
        metric,
        curves=curves,
        style_by=on_off,
        label_by=label,
        name="ema_curves",
        title="EMA on vs off: eval accuracy over training",
        train_tag=None,
    )


def plot_mlp_vs_attention_curves(
    df: pd.DataFrame,
    out_dir: str,
    metric: str = "exact_accuracy",
    curves: Mapping[str, pd.DataFrame] | None = None,
    train_curves: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """Eval accuracy and training loss over steps, MLP-T (solid) vs self-attention (dashed) (E2.3).

    Returns:
      Path of `mlp_vs_attention_curves.png`.
    """

    def style(r):
        if config_flag(r.get("model.mlp_t")) is True:
            return "MLP-T"
        return f"attention, {r.get('model.pos_encodings', '?')}"

    return plot_eval_curves(
        df,
        out_dir,
        metric,
        curves=curves,
        style_by=style,
        name="mlp_vs_attention_curves",
        title="MLP-T vs self-attention",
        train_curves=train_curves,
    )
