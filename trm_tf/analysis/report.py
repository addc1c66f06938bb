"""Markdown report of one experiment group: runs table, varying fields, plots, fitted laws, paper numbers.

`write_report(df, out_dir, group_name)` writes into `out_dir` (local or gs://): `report.md`, `runs.csv` (the
full table) and the PNGs of `plots.plots_for_group`, linked from the report by relative paths so that the
folder can be copied or viewed on GitHub as a whole. Use one folder per group.
"""

from __future__ import annotations

import datetime
import math
import os
import posixpath
from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from trm_tf.analysis import paper, plot_common, plot_scaling, plots, runs, seeds

# Axes of the scaling laws: (column, description).
SCALING_AXES = (
    ("num_params", "parameters"),
    ("train_puzzles", "training puzzles"),
    ("num_aug", "augmentations per puzzle"),
)


# ------------------------------------------------------------------------------------------------
# Formatting.


def _fmt(v, kind: str = "auto") -> str:
    """Formats one cell: '–' for missing, compact numbers otherwise."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if kind == "pct":
        return f"{v:.2f}"
    if kind == "eng" and isinstance(v, (int, float, np.number)):
        for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{v / div:.3g}{suf}"
        return f"{v:.3g}"
    if isinstance(v, (float, np.floating)):
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def _plain(v):
    """numpy scalars as Python values, so that sets and sorting treat 1 and np.int64(1) alike."""
    return v.item() if isinstance(v, np.generic) else v


def _sort_key(v):
    """Numbers first in numeric order, then everything else by its text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def markdown_table(table: pd.DataFrame) -> str:
    """GitHub markdown table of a frame of already formatted cells (no `tabulate` dependency)."""
    cols = [str(c) for c in table.columns]

    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(cell(x) for x in r.tolist()) + " |")
    return "\n".join(lines)


def summary_table(
    df: pd.DataFrame, metric: str = "exact_accuracy", fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """The compact, formatted runs table used by `compare` and the report.

    Columns: run, status, step (done/total), the varying config fields, params, final and best eval
    metric (best with its step), the best checkpoint the run kept (`best/`: its metric, value and step,
    when any run kept one), whether the final eval used the full test set, final train metric, wall
    time (h), examples/s, and notes when a run has any.

    Args:
      df: `load_runs` table.
      metric: Eval metric tag.
      fields: Config columns to show; default: `runs.varying_fields(df)`.

    Returns:
      A frame of strings, one row per run, in `df` order.
    """
    fields = list(fields) if fields is not None else runs.varying_fields(df)
    pct = plot_common.is_percent_metric(metric)
    unit = " (%)" if pct else ""

    def disp(col):
        if col not in df:
            return pd.Series(np.nan, index=df.index)
        v = pd.to_numeric(df[col], errors="coerce")
        return pd.Series(plot_common.to_display(v, metric), index=df.index) if pct else v

    final, best = disp(f"final_eval.{metric}"), disp(f"best_eval.{metric}")
    best_step = df.get(f"best_eval_step.{metric}", pd.Series(np.nan, index=df.index))
    train = disp(f"final_train.{metric}")
    out = pd.DataFrame(index=df.index)
    out["run"] = plot_common.run_labels(df)
    out["status"] = df.get("status", "unknown")
    total = df.get("total_steps", pd.Series(np.nan, index=df.index))
    out["step"] = [
        _fmt(s) + ("" if pd.isna(t) else f"/{_fmt(t)}")
        for s, t in zip(df.get("step", [np.nan] * len(df)), total)
    ]
    for f in fields:
        out[f] = [_fmt(v) for v in df[f]]
    out["params"] = [_fmt(v, "eng") for v in df.get("num_params", [np.nan] * len(df))]
    kind = "pct" if pct else "auto"
    out[f"final {metric}{unit}"] = [_fmt(v, kind) for v in final]
    out[f"best {metric}{unit} @step"] = [
        "–" if pd.isna(v) else f"{_fmt(v, kind)} @{_fmt(s)}" for v, s in zip(best, best_step)
    ]
    if "best_checkpoint.step" in df and df["best_checkpoint.step"].notna().any():
        out["best checkpoint (metric value @step)"] = [
            "–" if pd.isna(s) else f"{m} {_fmt(v)} @{_fmt(s)}"
            for m, v, s in zip(
                df["best_checkpoint.metric"],
                df["best_checkpoint.value"],
                df["best_checkpoint.step"],
            )
        ]
    out["full test"] = [_fmt(v) for v in df.get("final_eval_full", [np.nan] * len(df))]
    out[f"train {metric}{unit}"] = [_fmt(v, kind) for v in train]
    out["wall (h)"] = [
        _fmt(round(v / 3600, 2)) for v in pd.to_numeric(df.get("wall_time_s"), errors="coerce")
    ]
    out["examples/s"] = [_fmt(v, "eng") for v in df.get("examples_per_s", [np.nan] * len(df))]
    if "notes" in df and df["notes"].fillna("").astype(bool).any():
        out["notes"] = df["notes"].fillna("")
    return out.reset_index(drop=True)


def default_group_name(df: pd.DataFrame) -> str:
    """The common prefix of the experiment ids (stripped of separators) if ≥ 3 characters, else "runs"."""
    ids = [str(x) for x in df.get("experiment_id", [])]
    prefix = os.path.commonprefix(ids).rstrip("_-./ ") if ids else ""
    return prefix if len(prefix) >= 3 else "runs"


# ------------------------------------------------------------------------------------------------
# Sections.


def _reference_section(df: pd.DataFrame) -> list[str]:
    tasks = {paper.task_of(n) for n in df.get("data.name", [])} - {None}
    if not tasks:
        tasks = {t for t, _ in paper.PAPER}
    lines = [
        "## Reference numbers",
        "",
        "Published test accuracies (%) to compare with (docs/experiments.md#published-results). "
        "Sudoku and Maze: exact accuracy (every cell right); ARC: pass@2 as the reference logs it, "
        "pooled over every evaluation of the run (`ARC/pooled/pass@2` here; `ARC/pass@2` is one "
        "checkpoint's votes and is not the paper's quantity).",
        "",
        "| task | variant | accuracy (%) | source |",
        "|---|---|---|---|",
    ]
    for (task, variant), (acc, src) in paper.PAPER.items():
        if task in tasks:
            lines.append(f"| {task} | {variant} | {acc} | {src} |")
    for task in sorted(tasks):
        for src, acc in paper.REPRODUCTIONS.get(task, []):
            lines.append(f"| {task} | reproduction | {acc} | {src} |")
    if "sudoku" in tasks:
        for name, acc in paper.SUDOKU_ABLATIONS.items():
            lines.append(
                f"| sudoku | ablation: {name} | {acc} | paper ablation table as recalled in "
                "docs/experiments.md#published-results (unverified) |"
            )
    return lines + [""]


def _fits_section(df: pd.DataFrame, metric: str, which: str) -> list[str]:
    lines = []
    for col, desc in SCALING_AXES:
        pts = plot_scaling.scaling_points(df, col, metric, which)
        if pts["x"].nunique() < 2:
            continue
        head = f"- **{plot_common.metric_label(metric, which)} vs {desc}** (`{col}`): "
        fit = plot_scaling.scaling_fit(df, col, metric, which)
        if fit is None:
            lines.append(
                head + f"not fitted: {len(pts)} usable point(s) at {pts['x'].nunique()} distinct "
                "x value(s); the law needs at least 4 points at 3 or more distinct x values "
                "(or its fit failed)."
            )
            continue
        from scipy import stats  # Imported here: only needed when a fit exists.

        q = stats.t.ppf(0.975, df=fit.n - 3)
        ci = {}
        for k in "abc":
            v, se = getattr(fit, k), getattr(fit, k + "_se")
            ci[k] = (v - q * se, v + q * se)
        lines.append(
            head + f"`{fit.formula()}` from {fit.n} runs; "
            f"a = {fit.a:.4g} ± {fit.a_se:.2g} (95% CI {ci['a'][0]:.4g} … {ci['a'][1]:.4g}), "
            f"b = {fit.b:.4g} ± {fit.b_se:.2g}, c = {fit.c:.3g} ± {fit.c_se:.2g} "
            f"(95% CI {ci['c'][0]:.3g} … {ci['c'][1]:.3g}); RMSE {fit.rmse:.3g}, R² {fit.r2:.4f}."
        )
        if fit.at_bound:
            lines.append(
                f"  **Unreliable:** {', '.join(fit.at_bound)} ended on its bound ("
                + (
                    "c at its minimum: no saturation visible in these points; "
                    if "c" in fit.at_bound
                    else ""
                )
                + (
                    "a at 100%: the points do not bend towards an asymptote below 100%; "
                    if "a" in fit.at_bound
                    else ""
                )
                + "do not read the asymptote as a prediction)."
            )
        pct = plot_common.is_percent_metric(metric)
        x1 = fit.x_for(fit.a - 1.0) if pct and not fit.at_bound else math.nan
        if np.isfinite(x1):
            lines.append(
                f"  The fit comes within 1 point of its asymptote at {desc} ≈ {_fmt(x1, 'eng')} "
                f"(largest run: {_fmt(pts['x'].max(), 'eng')})."
            )
    if not lines:
        return []
    return [
        "## Fitted scaling laws",
        "",
        "Saturating power law acc = a − b·x^(−c) (scipy curve_fit; ± are standard errors from the "
        "covariance, CIs use Student-t with n−3 degrees of freedom). With so few points the extrapolated "
        "asymptote is fragile: read the band in the plot, not only a.",
        "",
        *lines,
        "",
    ]


def _best_run_lines(df: pd.DataFrame, metric: str, which: str) -> list[str]:
    col = plot_common.metric_column(metric, which)
    if col not in df or pd.to_numeric(df[col], errors="coerce").notna().sum() == 0:
        return []
    v = pd.to_numeric(df[col], errors="coerce")
    i = v.idxmin() if "loss" in metric else v.idxmax()
    disp = plot_common.to_display(v, metric)
    unit = "%" if plot_common.is_percent_metric(metric) else ""
    label = plot_common.run_labels(df)[i]
    fields = runs.varying_fields(df)
    cfg = ", ".join(f"`{f}`={_fmt(df.loc[i, f])}" for f in fields) or "the shared config"
    return [
        f"Best run by {which} eval {metric}: **{label}** ({disp[i]:.2f}{unit}), with {cfg}.",
        "",
    ]


def write_report(
    df: pd.DataFrame,
    out_dir: str,
    group_name: str | None = None,
    metric: str = "exact_accuracy",
    which: str = "final",
    make_plots: bool = True,
    baseline: str | None = None,
) -> str:
    """Writes `<out_dir>/report.md` (plus `runs.csv` and the plots) for one group of runs; `baseline`
    names the arm the seed section compares the others with (`seeds.baseline_arm`).

    Args:
      df: `load_runs` table of the group.
      out_dir: Output folder, local or gs://.
      group_name: Title of the report; default: the common prefix of the experiment ids.
      metric: Eval metric the table, plots and fits use.
      which: "final" (last full evaluation) or "best" (best evaluation) for plots and fits.
      make_plots: Draw the plots (False: table, fields and fits only).

    Returns:
      Path of the report.

    Raises:
      ValueError: `df` has no rows.
    """
    if df.empty:
        raise ValueError("write_report: no runs to report on")
    group_name = group_name or default_group_name(df)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(posixpath.join(out_dir, "runs.csv"), "w") as f:
        f.write(df.to_csv(index=False))

    lines = _header_lines(df, group_name, metric, which)
    lines += _varying_fields_lines(df)
    lines += _best_run_lines(df, metric, which)
    seeded = seeds.has_seed_groups(df)
    if seeded:
        lines += seeds.report_lines(df, metric, baseline)
    lines += _fits_section(df, metric, which)
    if make_plots:
        made = plots.plots_for_group(df, out_dir, metric, which)
        if seeded:
            made.insert(
                0, ("Arms over seeds (95% t intervals)", seeds.plot_arms(df, out_dir, metric))
            )
        if made:
            lines += ["## Plots", ""]
            for title, path in made:
                lines += [f"### {title}", "", f"![{title}]({posixpath.basename(path)})", ""]
    lines += _reference_section(df)
    lines += _warning_lines(df)
    path = posixpath.join(out_dir, "report.md")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _header_lines(df: pd.DataFrame, group_name: str, metric: str, which: str) -> list[str]:
    """Title, what the report was made from, and the runs table."""
    status = df.get("status", pd.Series(["unknown"] * len(df))).value_counts()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# {group_name}",
        "",
        f"Generated {stamp} from {len(df)} run(s) ("
        + ", ".join(f"{n} {s}" for s, n in status.items())
        + f"). Metric: `{metric}` on the {which} evaluation "
        + (
            "(the last evaluation on the full test set, else the last evaluation)."
            if which == "final"
            else "(the best of all evaluations; periodic ones may use a test subset, so optimistic)."
        ),
        "Full table: [runs.csv](runs.csv).",
        "",
        "## Runs",
        "",
        markdown_table(summary_table(df, metric)),
        "",
        "`best … @step` is the best of all evaluations (periodic ones may use a test subset); "
        "train metrics count only the samples that halted in the logged step, so they are not "
        "comparable with eval metrics.",
        "",
    ]


def _varying_fields_lines(df: pd.DataFrame) -> list[str]:
    """The config fields that differ across the runs, with their values."""
    lines = ["## Varying config fields", ""]
    fields = runs.varying_fields(df)
    if fields:
        for f in fields:
            vals = sorted({_plain(v) for v in df[f].dropna()}, key=_sort_key)
            lines.append(f"- `{f}`: " + ", ".join(_fmt(v) for v in vals))
    else:
        lines.append("None: the runs share one config (seeds or repeats).")
    return [*lines, ""]


def _warning_lines(df: pd.DataFrame) -> list[str]:
    """One line per run whose loading left notes (missing or truncated files)."""
    noted = df[df.get("notes", pd.Series([""] * len(df))).fillna("").astype(bool)]
    if not len(noted):
        return []
    lines = ["## Warnings", ""]
    for _, r in noted.iterrows():
        lines.append(f"- `{r['workdir']}`: {r['notes']}")
    return [*lines, ""]
