"""Seeds as an axis: runs that differ only by `seed` form one arm; each arm gets n, mean, sd and a 95% interval.

An *arm* is the set of runs whose flattened configs agree on every hyperparameter except `seed` (missing fields
count as a value, so a run of an older layout does not join a newer arm by accident; paths, log cadences
and runtime settings do not count: `trm_tf.summaries.is_hparam`). For each arm and metric:

- n, the mean, the sample standard deviation (ddof=1);
- a 95% confidence interval of the mean from Student's t with n-1 degrees of freedom
  (mean ± t_{0.975, n-1} · sd / √n); none for n = 1. The t interval is exact for normal seed-to-seed
  noise and is the honest choice at n = 3–5, where a bootstrap interval is too narrow;
- the difference of two arms, so "arm B beats arm A" is reported with the interval that decides it:
  paired by seed when both arms ran the same seeds (the t interval of the per-seed differences; a seed
  fixes the data order, and for arms that differ only in what is evaluated, such as EMA on/off, the whole
  trajectory, so pairing removes the seed-to-seed spread), else Welch's t interval (unequal variances;
  Welch–Satterthwaite degrees of freedom).

`arm_table` gives the rows, `differences` the pairwise comparisons against a baseline arm, and
`plot_arms` draws the arms' means with their intervals as error bars (final and best evaluation). Every
other plot of the analysis draws the same intervals when its runs hold seeds: `by_arm` (points with
error bars) and `mean_curve` (curves with a band).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from trm_tf.analysis import runs
from trm_tf.analysis.plot_common import (
    is_percent_metric,
    metric_column,
    metric_label,
    new_figure,
    save_png,
    to_display,
)
from trm_tf.summaries import is_hparam

SEED_COLUMN = "seed"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """Mean of n seeds with its sample sd and 95% t interval (lo, hi); lo = hi = nan when n < 2."""

    n: int
    mean: float
    sd: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0

    def text(self, digits: int = 2) -> str:
        """`mean ± half-width [lo, hi] (n)`, or the single value with n = 1."""
        if self.n == 0:
            return "–"
        if self.n == 1 or math.isnan(self.lo):
            return f"{self.mean:.{digits}f} (n=1)"
        return (
            f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f} "
            f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}] (n={self.n})"
        )


def estimate(values) -> Estimate:
    """n, mean, sd and the 95% t interval of the finite values in `values`."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(n, mean, sd, mean - half, mean + half)


def welch_difference(a, b) -> Estimate:
    """Mean of `b` minus mean of `a` with Welch's 95% t interval (n = the smaller group's size).

    Needs ≥ 2 finite values on each side for an interval; when both variances are 0 the interval is the
    point itself."""
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    diff = float(y.mean() - x.mean())
    n = int(min(x.size, y.size))
    if n < 2:
        return Estimate(n, diff, math.nan, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return Estimate(n, diff, 0.0, diff, diff)
    dof = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * se
    return Estimate(n, diff, se, diff - half, diff + half)


def paired_difference(a: dict, b: dict) -> Estimate:
    """Mean over the seeds both arms ran of b[seed] − a[seed], with the 95% t interval of that mean
    (n = the common seeds). Arms that share a seed share its data order (and, when they differ only in
    what is evaluated, its whole trajectory), so pairing by seed removes the seed-to-seed spread that a
    Welch interval keeps."""
    return estimate([b[s] - a[s] for s in _common_seeds(a, b)])


def _common_seeds(a: dict, b: dict) -> list:
    return [s for s in sorted(set(a) & set(b)) if np.isfinite(a[s]) and np.isfinite(b[s])]


def difference(a: dict, b: dict) -> tuple[Estimate, str]:
    """(b − a, method): paired by seed when the arms share ≥ 2 seeds (`paired_difference`), else Welch's
    interval over all their values (`welch_difference`). `a`, `b`: {seed: value}."""
    if len(_common_seeds(a, b)) >= 2:
        return paired_difference(a, b), "paired by seed"
    return welch_difference(list(a.values()), list(b.values())), "Welch"


def arm_keys(df: pd.DataFrame) -> pd.Series:
    """One hashable key per row: the run's hyperparameters without `seed` (`summaries.is_hparam`: paths,
    log cadences and runtime settings left out, so the same arm run from another data directory or
    machine joins it); runs with equal keys are seeds of one arm."""
    cols = [c for c in runs.config_columns(df) if c != SEED_COLUMN and is_hparam(c)]
    if not cols:
        return pd.Series([()] * len(df), index=df.index)
    values = df[cols].map(runs._hashable)
    return pd.Series([tuple(r) for r in values.itertuples(index=False)], index=df.index)


def arm_labels(df: pd.DataFrame, keys: pd.Series) -> dict:
    """A short label per arm key: the experiment id, plus the config fields that tell its arms apart
    when one id has several arms."""
    labels = {}
    for key, rows in df.groupby(keys, sort=False):
        labels[key] = str(rows["experiment_id"].iloc[0]) if "experiment_id" in rows else "runs"
    counts = pd.Series(list(labels.values())).value_counts()
    fields = [f for f in runs.varying_fields(df) if f != SEED_COLUMN]
    for key, rows in df.groupby(keys, sort=False):
        if counts[labels[key]] > 1 and fields:
            first = rows.iloc[0]
            varying = [f for f in fields if f != "experiment_id"]
            labels[key] += " (" + ", ".join(f"{f}={first[f]}" for f in varying) + ")"
    return labels


def arm_groups(df: pd.DataFrame) -> list[tuple[str, pd.Index]]:
    """[(arm label, index of its runs)] in the table's order."""
    keys = arm_keys(df)
    labels = arm_labels(df, keys)
    return [(labels[k], rows.index) for k, rows in df.groupby(keys, sort=False)]


def half_width(values) -> float:
    """The 95% t half-width of the mean of the finite `values` (0 for fewer than 2)."""
    e = estimate(values)
    return e.half_width if e.n >= 2 else 0.0


def by_arm(df: pd.DataFrame, columns: dict[str, pd.Series]) -> pd.DataFrame:
    """One row per arm (`arm_groups`): `arm`, `n`, `finished` (every seed finished) and, for each named
    series of `columns` (indexed like `df`), its mean over the arm's seeds and `<name>_err`, the 95% t
    half-width of that mean (0 when fewer than 2 seeds have a value): what the plots draw as error bars."""
    status = df["status"] if "status" in df else pd.Series("unknown", index=df.index)
    rows = []
    for label, idx in arm_groups(df):
        row = {"arm": label, "n": len(idx), "finished": bool((status[idx] == "finished").all())}
        for name, series in columns.items():
            v = pd.to_numeric(series[idx], errors="coerce").to_numpy(dtype=float)
            fin = v[np.isfinite(v)]
            row[name] = float(fin.mean()) if fin.size else math.nan
            row[f"{name}_err"] = half_width(fin)
        rows.append(row)
    return pd.DataFrame(rows)


def arm_errorbars(ax, df: pd.DataFrame, x: pd.Series, y: pd.Series, **style) -> pd.DataFrame:
    """Draws each arm's mean of `y` at its mean `x` with the 95% t interval as an error bar on `ax`;
    returns the `by_arm` table it drew."""
    arms = by_arm(df, {"x": x, "y": y})
    style = {"fmt": "D", "ms": 4, "capsize": 3, **style}
    ax.errorbar(
        arms["x"],
        arms["y"],
        yerr=arms["y_err"],
        label="arm mean ± 95% t interval over seeds",
        **style,
    )
    return arms


def mean_curve(curves: list[pd.DataFrame]) -> pd.DataFrame:
    """The seeds' curves (each `step`, `value`) averaged per step: `step`, `mean`, `err` (95% t
    half-width, 0 where fewer than 2 seeds logged the step), `n`."""
    frames = [c[["step", "value"]] for c in curves if not c.empty]
    if not frames:
        return pd.DataFrame(columns=["step", "mean", "err", "n"])
    allc = pd.concat(frames)
    g = allc.groupby("step")["value"]
    out = pd.DataFrame({"mean": g.mean(), "err": g.apply(half_width), "n": g.size()})
    return out.reset_index()


def has_seed_groups(df: pd.DataFrame) -> bool:
    """Whether any arm holds ≥ 2 runs (seeds)."""
    return bool(len(df)) and arm_keys(df).value_counts().max() >= 2


def arm_table(df: pd.DataFrame, metric: str = "exact_accuracy") -> pd.DataFrame:
    """One row per arm, in the table's order: label, seeds, n and the final and best estimates.

    Columns: `arm`, `seeds` (sorted), `n`, then for `which` in (final, best): `{which}` (an `Estimate` in
    display units: percent for accuracies), `{which}_text`. The frame's attrs keep `values` (arm →
    {which: np.ndarray of per-seed values}) for the plot and `by_seed` (arm → {which: {seed: value}};
    runs without a seed are keyed by their row) for `differences`.
    """
    keys = arm_keys(df)
    labels = arm_labels(df, keys)
    rows, values, by_seed = [], {}, {}
    for key, group in df.groupby(keys, sort=False):
        seed_col = group.get(SEED_COLUMN, pd.Series(np.nan, index=group.index))
        seeds = sorted(int(s) for s in seed_col.dropna())
        row = {"arm": labels[key], "seeds": seeds, "n": len(group)}
        values[labels[key]], by_seed[labels[key]] = {}, {}
        run_keys = [int(s) if pd.notna(s) else f"row{i}" for i, s in seed_col.items()]
        for which in ("final", "best"):
            col = metric_column(metric, which)
            raw = pd.to_numeric(group.get(col, pd.Series(np.nan, index=group.index)), "coerce")
            shown = to_display(raw.to_numpy(dtype=float), metric)
            values[labels[key]][which] = shown
            by_seed[labels[key]][which] = dict(zip(run_keys, shown.tolist()))
            row[which] = estimate(shown)
            row[f"{which}_text"] = row[which].text()
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["values"] = values
    table.attrs["by_seed"] = by_seed
    return table


def baseline_arm(arms: list[str], baseline: str | None = None) -> str:
    """The arm the others are compared with: `baseline` when given (it must be an arm), else the one
    arm whose label contains "baseline", else the first."""
    if baseline:
        if baseline not in arms:
            raise ValueError(
                f"--baseline={baseline!r} is not an arm; the arms are: {', '.join(arms)}"
            )
        return baseline
    named = [a for a in arms if "baseline" in a]
    return named[0] if len(named) == 1 else arms[0]


def differences(table: pd.DataFrame, baseline: str | None = None, which: str = "final") -> list:
    """[(arm, Estimate of arm − baseline, method)] for every arm but the baseline (`baseline_arm`);
    method is "paired by seed" or "Welch" (`difference`)."""
    by_seed = table.attrs["by_seed"]
    arms = list(table["arm"])
    if not arms:
        return []
    base = baseline_arm(arms, baseline)
    out = []
    for a in arms:
        if a != base:
            est, method = difference(by_seed[base][which], by_seed[a][which])
            out.append((a, est, method))
    return out


def other_pairs(table: pd.DataFrame, baseline: str | None = None, which: str = "final") -> list:
    """[(a, b, Estimate of b − a, method)] for every pair of arms that are not the baseline
    (`baseline_arm`), a before b in the table's order: e.g. the deepest recursion against the shallowest."""
    by_seed = table.attrs["by_seed"]
    arms = list(table["arm"])
    if not arms:
        return []
    base = baseline_arm(arms, baseline)
    rest = [a for a in arms if a != base]
    out = []
    for i, a in enumerate(rest):
        for b in rest[i + 1 :]:
            est, method = difference(by_seed[a][which], by_seed[b][which])
            out.append((a, b, est, method))
    return out


def _verdict(d: Estimate) -> str:
    if d.n >= 2 and not math.isnan(d.lo) and (d.lo > 0 or d.hi < 0):
        return "interval excludes 0"
    return "interval includes 0 (not separated at this n)" if d.n >= 2 else "no interval (n < 2)"


def plot_arms(df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy") -> str:
    """Each arm's mean with its 95% t interval as error bars, final and best evaluation side by side;
    the seeds' own values as dots."""
    table = arm_table(df, metric)
    if table.empty:
        raise ValueError("no runs")
    fig, (ax,) = new_figure(width=max(6.0, 1.2 * len(table) + 2), height=4.0)
    x = np.arange(len(table))
    for offset, which, color in ((-0.15, "final", "C0"), (0.15, "best", "C1")):
        est = table[which].tolist()
        means = np.array([e.mean for e in est])
        err = np.array([e.half_width if e.n >= 2 else 0.0 for e in est])
        ax.errorbar(
            x + offset,
            means,
            yerr=err,
            fmt="o",
            color=color,
            capsize=4,
            label=f"{which} (mean ± 95% t interval)",
        )
        for i, arm in enumerate(table["arm"]):
            vals = table.attrs["values"][arm][which]
            ax.scatter(np.full(len(vals), i + offset), vals, s=10, color=color, alpha=0.35)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{a}\n(n={n})" for a, n in zip(table["arm"], table["n"])], fontsize=8)
    ax.set_ylabel(metric_label(metric, "final / best"))
    ax.set_title(f"{metric} per arm over seeds")
    ax.legend(fontsize=8)
    return save_png(fig, out_dir, f"seeds_{metric}")


def report_lines(
    df: pd.DataFrame, metric: str = "exact_accuracy", baseline: str | None = None
) -> list[str]:
    """The report's "Seeds" section: the arm table, each arm's difference from the baseline arm
    (`baseline_arm`), final and best, and the final differences between the other arms."""
    table = arm_table(df, metric)
    unit = " (%)" if is_percent_metric(metric) else ""
    lines = [
        "## Seeds: mean ± 95% interval per arm",
        "",
        "Runs whose configs differ only by `seed` form one arm. Intervals are Student-t 95% intervals of "
        "the mean (mean ± t·sd/√n, n-1 degrees of freedom). A difference between two arms that ran "
        "the same seeds is paired by seed (the t interval of the per-seed differences: a seed fixes the "
        "data order, so this removes the seed-to-seed spread); otherwise it uses Welch's t interval. "
        "`final` is the last evaluation (on the full test set when the run made one), `best` the best "
        "of all evaluations (periodic ones may use a test subset, so optimistic).",
        "",
        f"| arm | seeds | n | final {metric}{unit} | sd | best {metric}{unit} | sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        sd = [("–" if math.isnan(r[w].sd) else f"{r[w].sd:.2f}") for w in ("final", "best")]
        lines.append(
            f"| {r['arm']} | {','.join(map(str, r['seeds'])) or '–'} | {r['n']} | "
            f"{r['final_text']} | {sd[0]} | {r['best_text']} | {sd[1]} |"
        )
    lines.append("")
    for which in ("final", "best"):
        diffs = differences(table, baseline, which=which)
        if not diffs:
            continue
        base = baseline_arm(list(table["arm"]), baseline)
        lines += [f"Differences from **{base}** ({which} {metric}{unit}, 95% interval):", ""]
        for arm, d, method in diffs:
            lines.append(f"- {arm} − {base}: {d.text()}, {method} — {_verdict(d)}")
        lines.append("")
    pairs = other_pairs(table, baseline, which="final")
    if pairs:
        lines += [f"Differences between the other arms (final {metric}{unit}, 95% interval):", ""]
        for a, b, d, method in pairs:
            lines.append(f"- {b} − {a}: {d.text()}, {method} — {_verdict(d)}")
        lines.append("")
    return lines
