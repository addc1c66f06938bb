"""Scaling plots (accuracy vs parameters, training-set size, augmentations), the T × n heatmap and the
accuracy-vs-supervision-step plot.

Scaling plots draw the saturating power law acc = a − b·x^(−c) with its 95% band when at least 4 points are
available. Each function writes `<out_dir>/<name>.png` and returns that path, or raises ValueError when the
table holds nothing to plot for its question.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib import ticker

from trm_tf.analysis import fits, seeds
from trm_tf.analysis.plot_common import (
    is_percent_metric,
    metric_column,
    metric_label,
    new_figure,
    numeric,
    reference_lines,
    run_labels,
    save_png,
    to_display,
)

log = logging.getLogger(__name__)


def scaling_points(
    df: pd.DataFrame, x_col: str, metric: str = "exact_accuracy", which: str = "final"
) -> pd.DataFrame:
    """Rows usable for a scaling plot: columns x, y (display units), label, finished; x > 0, finite."""
    x = numeric(df, x_col)
    y = pd.Series(to_display(numeric(df, metric_column(metric, which)), metric), index=df.index)
    status = df["status"] if "status" in df else pd.Series("unknown", index=df.index)
    pts = pd.DataFrame(
        {"x": x, "y": y, "label": run_labels(df), "finished": status == "finished"}, index=df.index
    )
    return pts[np.isfinite(pts["x"]) & np.isfinite(pts["y"]) & (pts["x"] > 0)].sort_values("x")


def scaling_fit(
    df: pd.DataFrame, x_col: str, metric: str = "exact_accuracy", which: str = "final"
) -> fits.PowerLawFit | None:
    """The power-law fit of a scaling plot, or None when it has fewer than 4 usable points."""
    pts = scaling_points(df, x_col, metric, which)
    if len(pts) < 4 or pts["x"].nunique() < 3:
        return None
    try:
        # An accuracy in percent cannot saturate above 100.
        a_max = 100.0 if is_percent_metric(metric) else None
        return fits.fit_power_law(pts["x"].to_numpy(), pts["y"].to_numpy(), a_max=a_max)
    except (RuntimeError, ValueError) as e:
        log.warning("power-law fit of %s vs %s failed: %s", metric, x_col, e)
        return None


def _scaling_plot(
    df, x_col, xlabel, title, name, out_dir, metric, which, *, eng_ticks=False
) -> str:
    pts = scaling_points(df, x_col, metric, which)
    if pts.empty:
        raise ValueError(f"no run has both {x_col!r} and {metric_column(metric, which)!r}")
    fig, (ax,) = new_figure()
    fin, unf = pts[pts["finished"]], pts[~pts["finished"]]
    ax.scatter(fin["x"], fin["y"], s=42, color="C0", zorder=3, label="runs (finished)")
    if len(unf):
        ax.scatter(
            unf["x"],
            unf["y"],
            s=42,
            facecolors="none",
            edgecolors="C0",
            zorder=3,
            label="runs (not finished)",
        )
    sub = df.loc[pts.index]
    if seeds.has_seed_groups(sub):  # arms of several seeds: their means with 95% t intervals
        arms = seeds.arm_errorbars(ax, sub, pts["x"], pts["y"], color="C3", ms=5, zorder=4)
        marks = zip(arms["arm"] + " (n=" + arms["n"].astype(str) + ")", arms["x"], arms["y"])
    else:
        marks = zip(pts["label"], pts["x"], pts["y"])
    for label, x, y in marks:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7)
    fit = scaling_fit(df, x_col, metric, which)
    if fit is not None:
        lo, hi = pts["x"].min(), pts["x"].max()
        grid = np.geomspace(lo / 1.3, hi * 1.3, 200)
        band_lo, band_hi = fit.band(grid)
        warn = f"  [{', '.join(fit.at_bound)} at bound: unreliable]" if fit.at_bound else ""
        ax.plot(grid, fit.predict(grid), color="C1", lw=1.8, label=fit.formula() + warn)
        ax.fill_between(
            grid, band_lo, band_hi, color="C1", alpha=0.2, label="95% band (delta method)"
        )
        ax.axhline(fit.a, color="C1", lw=0.8, ls=":", label=f"asymptote a = {fit.a:.3g}")
    reference_lines(ax, df, metric)
    ax.set_xscale("log")
    if eng_ticks:
        ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric, which))
    ax.set_title(title + ("" if fit is not None else "  (fit needs ≥ 4 points)"))
    ax.legend(fontsize=7.5, loc="lower right")
    return save_png(fig, out_dir, name)


# ------------------------------------------------------------------------------------------------
# Scaling questions (Exp 1, 4a, 4b).


def plot_accuracy_vs_params(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Accuracy vs parameter count (Exp 1, model size), log x, with the power-law fit.

    Args:
      df: `load_runs` table (needs `num_params`).
      out_dir: Output folder.
      metric: Eval metric tag.
      which: "final" or "best" evaluation.

    Returns:
      Path of `accuracy_vs_params.png`.
    """
    return _scaling_plot(
        df,
        "num_params",
        "parameters (log scale)",
        "Accuracy vs model size",
        "accuracy_vs_params",
        out_dir,
        metric,
        which,
        eng_ticks=True,
    )


def plot_accuracy_vs_train_size(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Accuracy vs number of training puzzles (Exp 4a), log x, with the power-law fit.

    Uses `train_puzzles`, parsed from the data config name (`sub<N>_aug<A>`).

    Returns:
      Path of `accuracy_vs_train_size.png`.
    """
    return _scaling_plot(
        df,
        "train_puzzles",
        "training puzzles before augmentation (log scale)",
        "Accuracy vs training-set size",
        "accuracy_vs_train_size",
        out_dir,
        metric,
        which,
    )


def plot_accuracy_vs_augmentations(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Accuracy vs augmentations per puzzle (Exp 4b), log x, with the power-law fit.

    Uses `num_aug` from the data config name; runs with 0 augmentations cannot sit on a log axis and are
    left out.

    Returns:
      Path of `accuracy_vs_augmentations.png`.
    """
    return _scaling_plot(
        df,
        "num_aug",
        "augmentations per puzzle (log scale)",
        "Accuracy vs number of augmentations",
        "accuracy_vs_augmentations",
        out_dir,
        metric,
        which,
    )


# ------------------------------------------------------------------------------------------------
# Recursion (Exp 2a/2b, E2.2) and supervision (Exp 5).


def plot_tn_heatmap(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Heatmap of accuracy over T = H_cycles (rows) and n = L_cycles (columns); mean over seeds.

    Each cell shows the accuracy (with several runs: their mean ± the 95% t half-width, and how many),
    and the paper's effective depth T(n+1)·layers. Empty cells were not run.

    Returns:
      Path of `tn_heatmap.png`.
    """
    h, lcy = numeric(df, "model.H_cycles"), numeric(df, "model.L_cycles")
    y = pd.Series(to_display(numeric(df, metric_column(metric, which)), metric), index=df.index)
    d = pd.DataFrame({"T": h, "n": lcy, "y": y, "depth": numeric(df, "effective_depth")}).dropna(
        subset=["T", "n", "y"]
    )
    if d.empty:
        raise ValueError("no run has model.H_cycles, model.L_cycles and the metric")
    g = d.groupby(["T", "n"]).agg(
        y=("y", "mean"), k=("y", "size"), err=("y", seeds.half_width), depth=("depth", "first")
    )
    ts = sorted(d["T"].unique())
    ns = sorted(d["n"].unique())
    grid = np.full((len(ts), len(ns)), np.nan)
    for (t, n), r in g.iterrows():
        grid[ts.index(t), ns.index(n)] = r["y"]
    fig, (ax,) = new_figure(width=max(4.5, 1.1 * len(ns) + 2.5), height=max(3.2, 0.8 * len(ts) + 2))
    ax.grid(False)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label=metric_label(metric, which))
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (t, n), r in g.iterrows():
        i, j = ts.index(t), ns.index(n)
        txt = f"{r['y']:.1f}"
        if r["k"] > 1:  # mean of several runs (seeds) with its 95% t half-width
            txt += f" ± {r['err']:.1f}\n(n={int(r['k'])} runs)"
        if np.isfinite(r["depth"]):
            txt += f"\ndepth {int(r['depth'])}"
        ax.text(
            j,
            i,
            txt,
            ha="center",
            va="center",
            fontsize=8,
            color="black" if r["y"] > mid else "white",
        )
    ax.set_xticks(range(len(ns)), [f"{int(v)}" for v in ns])
    ax.set_yticks(range(len(ts)), [f"{int(v)}" for v in ts])
    ax.set_xlabel("n = L_cycles (latent updates per cycle)")
    ax.set_ylabel("T = H_cycles (cycles)")
    ax.set_title(
        "Accuracy over recursion T × n\n(depth = T(n+1)·layers, the paper's effective depth)"
    )
    return save_png(fig, out_dir, "tn_heatmap")


def plot_accuracy_vs_supervision_step(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy"
) -> str:
    """Final-eval accuracy after k supervision steps, k = 1..N (test-time recursion), one line per run
    (per arm when the runs hold seeds: the seeds' mean with 95% t intervals as error bars).

    Reads the `final_eval.<metric>/step_<k>` columns. A star marks each run's trained N_sup
    (`act.halt_max_steps`); steps beyond it show test-time extrapolation.

    Returns:
      Path of `accuracy_vs_supervision_step.png`.
    """
    prefix = f"final_eval.{metric}/step_"
    cols = {int(c[len(prefix) :]): c for c in df.columns if c.startswith(prefix)}
    if not cols:
        raise ValueError(f"no {prefix}<k> columns (the eval did not log {metric}/step_k)")
    ks = sorted(cols)
    fig, (ax,) = new_figure()
    plotted = 0
    if seeds.has_seed_groups(
        df
    ):  # one line per arm: the seeds' mean, 95% t intervals as error bars
        arms = seeds.by_arm(
            df,
            {
                **{
                    str(k): pd.Series(to_display(numeric(df, cols[k]), metric), index=df.index)
                    for k in ks
                },
                "nsup": numeric(df, "act.halt_max_steps"),
            },
        )
        lines = [
            (
                f"{a['arm']} (n={a['n']})",
                [a[str(k)] for k in ks],
                [a[f"{k}_err"] for k in ks],
                a["nsup"],
            )
            for _, a in arms.iterrows()
        ]
    else:
        labels = run_labels(df)
        lines = [
            (
                labels[idx],
                to_display([row.get(cols[k], np.nan) for k in ks], metric),
                None,
                pd.to_numeric(row.get("act.halt_max_steps"), errors="coerce"),
            )
            for idx, row in df.iterrows()
        ]
    for label, vals, err, nsup in lines:
        vals = np.asarray(vals, dtype=float)
        if not np.isfinite(vals).any():
            continue
        (line,) = ax.plot(ks, vals, marker="o", ms=3.5, lw=1.5, label=label)
        if err is not None:
            ax.errorbar(ks, vals, yerr=err, fmt="none", ecolor=line.get_color(), capsize=3)
        plotted += 1
        if np.isfinite(nsup) and int(nsup) in ks and np.isfinite(vals[ks.index(int(nsup))]):
            ax.plot(nsup, vals[ks.index(int(nsup))], marker="*", ms=12, color=line.get_color())
    if not plotted:
        raise ValueError(f"every {prefix}<k> value is missing")
    ax.plot(
        [], [], marker="*", ms=10, ls="none", color="0.3", label="trained N_sup (halt_max_steps)"
    )
    reference_lines(ax, df, metric)
    ax.set_xlabel("supervision steps run at test time (k)")
    ax.set_ylabel(metric_label(metric))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_title("Accuracy vs test-time supervision steps")
    ax.legend(fontsize=7.5, loc="lower right", ncols=2 if plotted > 8 else 1)
    return save_png(fig, out_dir, "accuracy_vs_supervision_step")
