"""Cost plots: accuracy vs training compute and wall time, accuracy vs test compute (with Pareto fronts),
throughput vs batch size.

When the runs hold seeds (`seeds.has_seed_groups`), arms are drawn as their means over seeds with 95% t
intervals as error bars, and the Pareto front is taken over the arms' means."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import ticker

from trm_tf.analysis import plot_common as pc
from trm_tf.analysis import seeds


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
    y = pd.Series(
        pc.to_display(pc.numeric(df, pc.metric_column(metric, which)), metric), index=df.index
    )
    panels = [
        ("train_flops", pc.numeric(df, "train_flops"), "training compute (FLOPs, log scale)"),
        ("wall_time_h", pc.numeric(df, "wall_time_s") / 3600.0, "wall time (hours, log scale)"),
    ]
    panels = [p for p in panels if (np.isfinite(p[1]) & np.isfinite(y) & (p[1] > 0)).sum() >= 2]
    if not panels:
        raise ValueError(
            "fewer than 2 runs have train_flops or wall_time_s together with the metric"
        )
    fig, axes = pc.new_figure(ncols=len(panels), width=6.2 if len(panels) == 2 else 7.0)
    labels = pc.run_labels(df)
    seeded = seeds.has_seed_groups(df)
    for ax, (_, x, xlabel) in zip(axes, panels):
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        if (
            seeded
        ):  # the arms' means over seeds, 95% t intervals as error bars; the front over means
            arms = seeds.by_arm(df[ok], {"x": x[ok], "y": y[ok]})
            xs, ys = arms["x"].to_numpy(), arms["y"].to_numpy()
            ls = (arms["arm"] + " (n=" + arms["n"].astype(str) + ")").to_numpy()
            ax.errorbar(
                xs,
                ys,
                yerr=arms["y_err"].to_numpy(),
                xerr=arms["x_err"].to_numpy(),
                fmt="none",
                ecolor="0.45",
                capsize=3,
                label="95% t interval over seeds",
            )
        else:
            xs, ys, ls = x[ok].to_numpy(), y[ok].to_numpy(), labels[ok].to_numpy()
        front = pareto_front(xs, ys)
        what = "arms (mean over seeds)" if seeded else "runs"
        ax.scatter(xs[~front], ys[~front], s=36, color="C0", alpha=0.7, label=what)
        ax.scatter(xs[front], ys[front], s=60, color="C3", zorder=3, label="Pareto front")
        o = np.argsort(xs[front])
        ax.plot(xs[front][o], ys[front][o], color="C3", lw=1.2, drawstyle="steps-post")
        for xi, yi, li in zip(xs, ys, ls):
            ax.annotate(li, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(pc.metric_label(metric, which))
        ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle("Accuracy vs training cost (Pareto front: no run is cheaper and better)")
    return pc.save_png(fig, out_dir, "accuracy_vs_compute")


def test_flops_per_step(df: pd.DataFrame) -> pd.Series:
    """Matmul FLOPs of one supervision step on one test example, per run: `flops_per_example_eval` (the
    evaluation's steps) / the evaluation's steps (`eval.halt_max_steps`, else `act.halt_max_steps`)."""
    steps = pc.numeric(df, "eval.halt_max_steps")
    steps = steps.where(np.isfinite(steps) & (steps > 0), pc.numeric(df, "act.halt_max_steps"))
    return pc.numeric(df, "flops_per_example_eval") / steps


def plot_accuracy_vs_test_compute(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy"
) -> str:
    """Final-eval accuracy vs test compute per puzzle, Pareto front marked: for each arm (mean over seeds,
    95% t intervals) or run, one point per number of supervision steps k run at test time (k × the FLOPs of
    one step: `final_eval.<metric>/step_<k>`), joined by a line, and a hollow point for adaptive halting
    (Q-halt: the mean steps it ran, `final_eval.adaptive_steps`, and its accuracy) when the metric is
    `exact_accuracy`. The front is taken over all the points: the cheapest way to each accuracy.

    Returns:
      Path of `accuracy_vs_test_compute.png`.
    """
    prefix = f"final_eval.{metric}/step_"
    cols = {int(c[len(prefix) :]): c for c in df.columns if c.startswith(prefix)}
    per_step = test_flops_per_step(df)
    if not cols or not (np.isfinite(per_step) & (per_step > 0)).any():
        raise ValueError(f"no run has {prefix}<k> columns and flops_per_example_eval")
    ks = sorted(cols)
    series = {
        "flops": per_step,
        **{
            str(k): pd.Series(pc.to_display(pc.numeric(df, cols[k]), metric), index=df.index)
            for k in ks
        },
    }
    adaptive = metric == "exact_accuracy" and "final_eval.adaptive_exact_accuracy" in df
    if adaptive:
        series["ad_steps"] = pc.numeric(df, "final_eval.adaptive_steps")
        series["ad_y"] = pd.Series(
            pc.to_display(pc.numeric(df, "final_eval.adaptive_exact_accuracy"), metric),
            index=df.index,
        )
    if seeds.has_seed_groups(df):
        table = seeds.by_arm(df, series)
        table["label"] = table["arm"] + " (n=" + table["n"].astype(str) + ")"
    else:
        table = pd.DataFrame({name: s.to_numpy() for name, s in series.items()})
        table["label"] = pc.run_labels(df).to_numpy()
    fig, (ax,) = pc.new_figure(width=7.4)
    xs_all, ys_all = [], []
    for i, row in table.iterrows():
        if not (np.isfinite(row["flops"]) and row["flops"] > 0):
            continue
        x = np.array([k * row["flops"] for k in ks])
        y = np.array([row[str(k)] for k in ks], dtype=float)
        ok = np.isfinite(y)
        if not ok.any():
            continue
        color = f"C{i % 10}"
        ax.plot(x[ok], y[ok], marker="o", ms=3.5, lw=1.3, color=color, label=row["label"])
        if f"{ks[0]}_err" in row:
            err = np.array([row[f"{k}_err"] for k in ks], dtype=float)
            ax.errorbar(x[ok], y[ok], yerr=err[ok], fmt="none", ecolor=color, capsize=2.5)
        xs_all += list(x[ok])
        ys_all += list(y[ok])
        if adaptive and np.isfinite(row["ad_steps"]) and np.isfinite(row["ad_y"]):
            xa = row["ad_steps"] * row["flops"]
            ax.plot(xa, row["ad_y"], marker="s", ms=7, mfc="none", mec=color, ls="none")
            xs_all.append(xa)
            ys_all.append(row["ad_y"])
    if not xs_all:
        raise ValueError(f"every {prefix}<k> value is missing")
    xs_all, ys_all = np.array(xs_all), np.array(ys_all)
    front = pareto_front(xs_all, ys_all)
    o = np.argsort(xs_all[front])
    ax.plot(
        xs_all[front][o],
        ys_all[front][o],
        color="0.2",
        lw=2.2,
        alpha=0.35,
        drawstyle="steps-post",
        label="Pareto front",
    )
    if adaptive:
        ax.plot(
            [], [], marker="s", ms=7, mfc="none", mec="0.3", ls="none", label="adaptive halting"
        )
    pc.reference_lines(ax, df, metric)
    ax.set_xscale("log")
    ax.set_xlabel("test compute per puzzle (FLOPs, log scale): k supervision steps")
    ax.set_ylabel(pc.metric_label(metric))
    ax.set_title("Accuracy vs test compute (points: k = 1 … N test-time supervision steps)")
    ax.legend(fontsize=7, loc="upper left")
    return pc.save_png(fig, out_dir, "accuracy_vs_test_compute")


def plot_throughput_vs_batch(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> str:
    """Training throughput vs global batch size with ideal linear scaling (left), accuracy vs batch (right).

    Returns:
      Path of `throughput_vs_batch.png`.
    """
    b = pc.numeric(df, "train.global_batch_size")
    thr = pc.numeric(df, "examples_per_s")
    y = pd.Series(
        pc.to_display(pc.numeric(df, pc.metric_column(metric, which)), metric), index=df.index
    )
    ok = np.isfinite(b) & np.isfinite(thr) & (b > 0) & (thr > 0)
    if not ok.any():
        raise ValueError("no run has train.global_batch_size and examples_per_s")
    ok_y = np.isfinite(b) & np.isfinite(y) & (b > 0)
    seeded = seeds.has_seed_groups(df)
    ncols = 2 if ok_y.any() else 1
    fig, axes = pc.new_figure(ncols=ncols, width=6.2 if ncols == 2 else 7.0)
    ax = axes[0]
    d = pd.DataFrame({"b": b[ok], "t": thr[ok]})
    ax.scatter(d["b"], d["t"], s=30, color="C0", alpha=0.6, label="runs (examples/s)")
    med = d.groupby("b")["t"].median()  # Several runs per batch size (seeds, settings): median.
    ax.plot(med.index, med.values, color="C0", lw=1.6, label="median per batch size")
    if seeded:
        seeds.arm_errorbars(ax, df[ok], b[ok], thr[ok], color="C0")
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
        if seeded:
            seeds.arm_errorbars(ax, df[ok_y], b[ok_y], y[ok_y], color="C2")
        pc.reference_lines(ax, df, metric)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.set_xlabel("global batch size (log₂ scale)")
        ax.set_ylabel(pc.metric_label(metric, which))
        ax.set_title("Accuracy vs batch size")
        ax.legend(fontsize=7.5, loc="lower right")
    return pc.save_png(fig, out_dir, "throughput_vs_batch")
