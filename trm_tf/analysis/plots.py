"""One PNG per study question, from a `load_runs` table (and logged curves where needed).

Every function takes the table, writes `<out_dir>/<name>.png` (local or gs://) and returns that path. They
raise ValueError when the table holds nothing to plot for that question (e.g. no run has `num_params`);
`plots_for_group` picks the plots that apply to a set of runs and skips the rest with a warning.

Accuracies are shown in percent (values logged as fractions are multiplied by 100). Scaling plots draw the
saturating power law acc = a − b·x^(−c) with its 95% band when at least 4 points are available.
Figures are drawn with the Agg canvas directly (no pyplot, no global backend switch).
"""

from __future__ import annotations

import io
import logging
import posixpath
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trm_tf.analysis import fits, paper, runs

log = logging.getLogger(__name__)

_DPI = 120


# ------------------------------------------------------------------------------------------------
# Helpers shared by the plots and by the report.


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


def _flag(v) -> bool | None:
    """A config boolean as True/False, or None when missing (numpy bools from pandas included)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return None


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[col], errors="coerce")


def _save(fig: Figure, out_dir: str, name: str) -> str:
    tf.io.gfile.makedirs(out_dir)
    path = posixpath.join(out_dir, f"{name}.png")
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=_DPI)  # Constrained layout already fits the labels.
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def _new_fig(ncols: int = 1, width: float = 7.0, height: float = 4.6):
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
    return fig, axes


def _reference_line(ax, df: pd.DataFrame, metric: str) -> None:
    """Horizontal lines at the paper's numbers for the runs' datasets and mixers, when the metric has one."""
    if metric not in ("exact_accuracy", "ARC/pass@2") or "data.name" not in df:
        return
    mixers = (
        df["model.mlp_t"] if "model.mlp_t" in df else pd.Series([None] * len(df), index=df.index)
    )
    refs = []
    for name, mlp in zip(df["data.name"], mixers):
        ref = paper.reference_for(name, mlp)
        if ref and ref not in refs:
            refs.append(ref)
    for ref, (color, ls) in zip(refs, [("0.3", (0, (5, 3))), ("tab:brown", (0, (1, 2)))] * 4):
        ax.axhline(ref[0], color=color, ls=ls, lw=1.1, label=f"{ref[1]}: {ref[0]}%")


def scaling_points(
    df: pd.DataFrame, x_col: str, metric: str = "exact_accuracy", which: str = "final"
) -> pd.DataFrame:
    """Rows usable for a scaling plot: columns x, y (display units), label, finished; x > 0, finite."""
    x = _num(df, x_col)
    y = pd.Series(to_display(_num(df, metric_column(metric, which)), metric), index=df.index)
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
    fig, (ax,) = _new_fig()
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
    for _, p in pts.iterrows():
        ax.annotate(
            p["label"], (p["x"], p["y"]), textcoords="offset points", xytext=(4, -11), fontsize=7
        )
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
    _reference_line(ax, df, metric)
    ax.set_xscale("log")
    if eng_ticks:
        ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric, which))
    ax.set_title(title + ("" if fit is not None else "  (fit needs ≥ 4 points)"))
    ax.legend(fontsize=7.5, loc="lower right")
    return _save(fig, out_dir, name)


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

    Each cell shows the accuracy, the number of runs averaged (when > 1) and the paper's effective depth
    T(n+1)·layers. Empty cells were not run.

    Returns:
      Path of `tn_heatmap.png`.
    """
    h, lcy = _num(df, "model.H_cycles"), _num(df, "model.L_cycles")
    y = pd.Series(to_display(_num(df, metric_column(metric, which)), metric), index=df.index)
    d = pd.DataFrame({"T": h, "n": lcy, "y": y, "depth": _num(df, "effective_depth")}).dropna(
        subset=["T", "n", "y"]
    )
    if d.empty:
        raise ValueError("no run has model.H_cycles, model.L_cycles and the metric")
    g = d.groupby(["T", "n"]).agg(y=("y", "mean"), k=("y", "size"), depth=("depth", "first"))
    ts = sorted(d["T"].unique())
    ns = sorted(d["n"].unique())
    grid = np.full((len(ts), len(ns)), np.nan)
    for (t, n), r in g.iterrows():
        grid[ts.index(t), ns.index(n)] = r["y"]
    fig, (ax,) = _new_fig(width=max(4.5, 1.1 * len(ns) + 2.5), height=max(3.2, 0.8 * len(ts) + 2))
    ax.grid(False)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label=metric_label(metric, which))
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (t, n), r in g.iterrows():
        i, j = ts.index(t), ns.index(n)
        txt = f"{r['y']:.1f}"
        if r["k"] > 1:
            txt += f"\n(n={int(r['k'])} runs)"
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
    return _save(fig, out_dir, "tn_heatmap")


def plot_accuracy_vs_supervision_step(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy"
) -> str:
    """Final-eval accuracy after k supervision steps, k = 1..N (test-time recursion), one line per run.

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
    fig, (ax,) = _new_fig()
    labels = run_labels(df)
    plotted = 0
    for idx, row in df.iterrows():
        vals = to_display([row.get(cols[k], np.nan) for k in ks], metric)
        if not np.isfinite(vals).any():
            continue
        (line,) = ax.plot(ks, vals, marker="o", ms=3.5, lw=1.5, label=labels[idx])
        plotted += 1
        nsup = pd.to_numeric(row.get("act.halt_max_steps"), errors="coerce")
        if np.isfinite(nsup) and int(nsup) in ks and np.isfinite(vals[ks.index(int(nsup))]):
            ax.plot(nsup, vals[ks.index(int(nsup))], marker="*", ms=12, color=line.get_color())
    if not plotted:
        raise ValueError(f"every {prefix}<k> value is missing")
    ax.plot(
        [], [], marker="*", ms=10, ls="none", color="0.3", label="trained N_sup (halt_max_steps)"
    )
    _reference_line(ax, df, metric)
    ax.set_xlabel("supervision steps run at test time (k)")
    ax.set_ylabel(metric_label(metric))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_title("Accuracy vs test-time supervision steps")
    ax.legend(fontsize=7.5, loc="lower right", ncols=2 if plotted > 8 else 1)
    return _save(fig, out_dir, "accuracy_vs_supervision_step")


# ------------------------------------------------------------------------------------------------
# Curves (EMA, MLP-T vs attention, any group).


def _curves_for(df, split, tag, curves):
    """{workdir: DataFrame(step, value)}: given curves first, else read from the run (quietly)."""
    out = {}
    for w in df["workdir"]:
        if curves is not None and w in curves:
            out[w] = curves[w]
        else:
            out[w] = runs.load_scalars(w, split, tag, warn=False)
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
    """Eval metric vs optimizer step for every run (left), and a training loss (right).

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
    tr = {}
    for tag in (train_tag,) if isinstance(train_tag, str) else (train_tag or ()):
        tr = _curves_for(df, "train", tag, train_curves)
        if not all(c.empty for c in tr.values()):
            train_tag = tag
            break
    ncols = 2 if tr and not all(c.empty for c in tr.values()) else 1
    fig, axes = _new_fig(ncols=ncols, width=6.4 if ncols == 2 else 7.0)
    labels = run_labels(df)
    groups = [style_by(r) for _, r in df.iterrows()] if style_by else [None] * len(df)
    suffix = [label_by(r) for _, r in df.iterrows()] if label_by else groups
    styles = {g: s for g, s in zip(dict.fromkeys(groups), ["-", "--", ":", "-."] * 8)}
    for i, (idx, row) in enumerate(df.iterrows()):
        lab = labels[idx] + (f" ({suffix[i]})" if suffix[i] is not None else "")
        color = f"C{i % 10}"
        c = ev[row["workdir"]]
        if not c.empty:
            axes[0].plot(
                c["step"],
                to_display(c["value"], metric),
                ls=styles[groups[i]],
                color=color,
                marker="o",
                ms=3,
                lw=1.6,
                label=lab,
            )
        if ncols == 2:
            t = tr[row["workdir"]]
            if not t.empty:
                axes[1].plot(t["step"], t["value"], ls=styles[groups[i]], color=color, lw=1.2)
    _reference_line(axes[0], df, metric)
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel(f"eval {metric}" + (" (%)" if is_percent_metric(metric) else ""))
    if ncols == 2:
        axes[0].set_title(f"eval {metric}")
    axes[0].legend(fontsize=7.5, loc="best")
    if ncols == 2:
        axes[1].set_xlabel("optimizer step")
        axes[1].set_ylabel(f"train {train_tag}")
        axes[1].set_yscale("log")
        axes[1].set_title(f"train {train_tag} (halted samples only)")
    fig.suptitle(title)
    return _save(fig, out_dir, name)


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
        return "EMA off" if _flag(r.get("optim.ema")) is False else "EMA on"

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
        if _flag(r.get("model.mlp_t")) is True:
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


# ------------------------------------------------------------------------------------------------
# Compute and throughput (Exp 3, Exp 6, Exp 7).


def pareto_front(x, y) -> np.ndarray:
    """Boolean mask of the points not dominated by another with lower-or-equal x and higher y."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.lexsort((-y, x))  # By x ascending, ties: best y first.
    mask = np.zeros(len(x), dtype=bool)
    best = -np.inf
    for i in order:
        if y[i] > best:
            mask[i] = True
            best = y[i]
    return mask


def plot_accuracy_vs_compute(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Accuracy vs training compute (FLOPs/example × batch × steps) and vs wall time, Pareto fronts marked.

    Returns:
      Path of `accuracy_vs_compute.png`.
    """
    y = pd.Series(to_display(_num(df, metric_column(metric, which)), metric), index=df.index)
    panels = [
        ("train_flops", _num(df, "train_flops"), "training compute (FLOPs, log scale)"),
        ("wall_time_h", _num(df, "wall_time_s") / 3600.0, "wall time (hours, log scale)"),
    ]
    panels = [p for p in panels if (np.isfinite(p[1]) & np.isfinite(y) & (p[1] > 0)).sum() >= 2]
    if not panels:
        raise ValueError(
            "fewer than 2 runs have train_flops or wall_time_s together with the metric"
        )
    fig, axes = _new_fig(ncols=len(panels), width=6.2 if len(panels) == 2 else 7.0)
    labels = run_labels(df)
    for ax, (_, x, xlabel) in zip(axes, panels):
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        xs, ys, ls = x[ok].to_numpy(), y[ok].to_numpy(), labels[ok].to_numpy()
        front = pareto_front(xs, ys)
        ax.scatter(xs[~front], ys[~front], s=36, color="C0", alpha=0.7, label="runs")
        ax.scatter(xs[front], ys[front], s=60, color="C3", zorder=3, label="Pareto front")
        o = np.argsort(xs[front])
        ax.plot(xs[front][o], ys[front][o], color="C3", lw=1.2, drawstyle="steps-post")
        for xi, yi, li in zip(xs, ys, ls):
            ax.annotate(li, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_label(metric, which))
        ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle("Accuracy vs training cost (Pareto front: no run is cheaper and better)")
    return _save(fig, out_dir, "accuracy_vs_compute")


def plot_throughput_vs_batch(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Training throughput vs global batch size with ideal linear scaling (left), accuracy vs batch (right).

    Returns:
      Path of `throughput_vs_batch.png`.
    """
    b = _num(df, "train.global_batch_size")
    thr = _num(df, "examples_per_s")
    y = pd.Series(to_display(_num(df, metric_column(metric, which)), metric), index=df.index)
    ok = np.isfinite(b) & np.isfinite(thr) & (b > 0) & (thr > 0)
    if not ok.any():
        raise ValueError("no run has train.global_batch_size and examples_per_s")
    ok_y = np.isfinite(b) & np.isfinite(y) & (b > 0)
    ncols = 2 if ok_y.any() else 1
    fig, axes = _new_fig(ncols=ncols, width=6.2 if ncols == 2 else 7.0)
    ax = axes[0]
    d = pd.DataFrame({"b": b[ok], "t": thr[ok]})
    ax.scatter(d["b"], d["t"], s=30, color="C0", alpha=0.6, label="runs (examples/s)")
    med = d.groupby("b")["t"].median()  # Several runs per batch size (seeds, settings): median.
    ax.plot(med.index, med.values, color="C0", lw=1.6, label="median per batch size")
    b0, t0 = med.index[0], med.iloc[0]
    ideal = np.array([med.index.min(), med.index.max()])
    ax.plot(ideal, t0 * ideal / b0, color="0.4", ls="--", lw=1, label="ideal linear scaling")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.set_xlabel("global batch size (log₂ scale)")
    ax.set_ylabel("training throughput (examples/s, log scale)")
    ax.set_title("Throughput vs batch size")
    ax.legend(fontsize=7.5)
    if ncols == 2:
        ax = axes[1]
        d = pd.DataFrame({"b": b[ok_y], "y": y[ok_y]})
        ax.scatter(d["b"], d["y"], s=30, color="C2", alpha=0.6, label="runs")
        med = d.groupby("b")["y"].median()
        ax.plot(med.index, med.values, color="C2", lw=1.6, label="median per batch size")
        _reference_line(ax, df, metric)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.set_xlabel("global batch size (log₂ scale)")
        ax.set_ylabel(metric_label(metric, which))
        ax.set_title("Accuracy vs batch size")
        ax.legend(fontsize=7.5, loc="lower right")
    return _save(fig, out_dir, "throughput_vs_batch")


# ------------------------------------------------------------------------------------------------
# Choosing plots for a group of runs.


def _varies(df: pd.DataFrame, col: str) -> bool:
    return col in df and df[col].dropna().map(runs._hashable).nunique() > 1


def plots_for_group(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> list[tuple[str, str]]:
    """Writes every plot that applies to this set of runs.

    A plot applies when its axis varies across the runs (e.g. `num_params` for the size plot, H/L cycles
    for the heatmap, `optim.ema`/`ema_rate` for the EMA curves); the eval curves, the supervision-step plot
    and the compute plot are drawn whenever their data exist.

    Returns:
      [(title, path)] of the PNGs written, in report order.
    """
    todo: list[tuple[str, Callable[[], str]]] = []
    if _varies(df, "num_params"):
        todo.append(
            ("Accuracy vs parameters", lambda: plot_accuracy_vs_params(df, out_dir, metric, which))
        )
    if _varies(df, "train_puzzles"):
        todo.append(
            (
                "Accuracy vs training-set size",
                lambda: plot_accuracy_vs_train_size(df, out_dir, metric, which),
            )
        )
    if _varies(df, "num_aug"):
        todo.append(
            (
                "Accuracy vs augmentations",
                lambda: plot_accuracy_vs_augmentations(df, out_dir, metric, which),
            )
        )
    if _varies(df, "model.H_cycles") or _varies(df, "model.L_cycles"):
        todo.append(("Accuracy over T × n", lambda: plot_tn_heatmap(df, out_dir, metric, which)))
    if _varies(df, "optim.ema") or _varies(df, "optim.ema_rate"):
        todo.append(("EMA on/off eval curves", lambda: plot_ema_curves(df, out_dir, metric)))
    if _varies(df, "model.mlp_t"):
        todo.append(
            ("MLP-T vs attention", lambda: plot_mlp_vs_attention_curves(df, out_dir, metric))
        )
    if _varies(df, "train.global_batch_size"):
        todo.append(
            (
                "Throughput vs batch size",
                lambda: plot_throughput_vs_batch(df, out_dir, metric, which),
            )
        )
    todo.append(
        (
            "Accuracy vs test-time supervision steps",
            lambda: plot_accuracy_vs_supervision_step(df, out_dir, metric),
        )
    )
    if len(df) > 1:
        todo.append(
            (
                "Accuracy vs training cost",
                lambda: plot_accuracy_vs_compute(df, out_dir, metric, which),
            )
        )
    todo.append(("Eval curves of every run", lambda: plot_eval_curves(df, out_dir, metric)))
    done = []
    for title, fn in todo:
        try:
            done.append((title, fn()))
        except ValueError as e:
            log.warning("skipped plot %r: %s", title, e)
    return done


__all__ = [
    "metric_column",
    "pareto_front",
    "plot_accuracy_vs_augmentations",
    "plot_accuracy_vs_compute",
    "plot_accuracy_vs_params",
    "plot_accuracy_vs_supervision_step",
    "plot_accuracy_vs_train_size",
    "plot_ema_curves",
    "plot_eval_curves",
    "plot_mlp_vs_attention_curves",
    "plot_throughput_vs_batch",
    "plot_tn_heatmap",
    "plots_for_group",
    "scaling_fit",
    "scaling_points",
]
