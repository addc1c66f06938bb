"""Turns trainer work directories (local or gs://) into a pandas table of runs and per-tag curves.

Input format: the workdir layout of docs/run_directory.md (`config.json`, `train/` and `eval/` event
files, `metrics.jsonl`, `eval_results.json`, `run_summary.json`). Every read goes through `tf.io.gfile`, so
gs:// paths work. Runs may be partial (still training, crashed, or preempted mid-write): every missing file,
tag or truncated record degrades to NaN values plus a logged warning and a note in the row's `notes` column,
never an exception.

Column naming of the table returned by `load_runs`:
  * identity: `experiment_id`, `run_name` (workdir basename), `workdir`, `status`, `notes`;
  * config fields flattened with dots: `seed`, `model.hidden_size`, `optim.ema`, `data.config`, ...
    (`df.attrs["config_columns"]` lists them);
  * derived fields: `train_puzzles` and `num_aug` (from the data config name `sub<N>_aug<A>`), `T_x_n`
    (H_cycles x L_cycles) and `effective_depth` (the paper's T(n+1)·layers);
  * eval metrics: `final_eval.<tag>` (the last full evaluation, else the last one), `final_eval_step`,
    `final_eval_full`, `best_eval.<tag>` and `best_eval_step.<tag>` (max over every evaluation, min for
    losses; periodic evaluations may use a test subset, so "best" is optimistic);
  * `final_train.<tag>`: the last logged training value (train metrics cover halted samples only);
  * `step`, `total_steps`, `wall_time_s`, `examples_per_s`, `num_params`, `flops_per_example_train`,
    `flops_per_example_eval`, `num_replicas`, `device_kind` (from run_summary.json, else from the logs),
    and `train_flops` = flops_per_example_train × global batch × step;
  * `best_checkpoint.metric`, `.value`, `.step`: the best checkpoint the run kept in `best/`
    (run_summary.json's `best`; the metric it was chosen by may differ from the table's).
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from trm_tf.analysis.run_config import (
    flatten_config,
    parse_data_config,
    upgrade_config,
)
from trm_tf.analysis.scalars import (
    exists,
    isdir,
    read_metrics_jsonl,
    read_run_json,
    split_scalars,
)
from trm_tf.summaries import is_hparam

log = logging.getLogger(__name__)

# Files whose presence marks a directory as a trainer workdir.
_RUN_MARKERS = ("config.json", "run_summary.json", "eval_results.json", "metrics.jsonl")
_SPLIT_DIRS = ("train", "eval")
_SUMMARY_FIELDS = (
    "status",
    "step",
    "total_steps",
    "wall_time_s",
    "examples_per_s",
    "num_params",
    "flops_per_example_train",
    "flops_per_example_eval",
    "num_replicas",
    "device_kind",
)
_GLOB_CHARS = re.compile(r"[*?\[]")
# Keys of eval_results.json history entries that are bookkeeping, not metrics.
_NON_METRIC_KEYS = {"step", "num_examples", "full", "split", "time"}


def _is_run_dir(path: str) -> bool:
    if any(exists(posixpath.join(path, m)) for m in _RUN_MARKERS):
        return True
    return any(isdir(posixpath.join(path, s)) for s in _SPLIT_DIRS)


def find_workdirs(paths_or_globs: Sequence[str]) -> list[str]:
    """Expands workdirs and globs of workdirs into a sorted, de-duplicated list of run directories.

    A matched directory that is not itself a run (no config.json, run_summary.json, eval_results.json,
    metrics.jsonl, train/ or eval/) is searched one level down, so `runs/exp01` finds `runs/exp01/*`.

    Args:
      paths_or_globs: Local or gs:// paths, each a workdir or a glob (`*`, `?`, `[...]`).

    Returns:
      Workdir paths without trailing slashes, in sorted order.
    """
    found: list[str] = []
    for arg in paths_or_globs:
        arg = arg.rstrip("/") or arg
        if _GLOB_CHARS.search(arg):
            try:
                matches = sorted(tf.io.gfile.glob(arg))
            except tf.errors.OpError as e:
                log.warning("glob %s failed: %s", arg, e)
                matches = []
        else:
            matches = [arg] if exists(arg) else []
        for m in matches:
            m = m.rstrip("/")
            if not isdir(m):
                continue
            if _is_run_dir(m):
                found.append(m)
            else:
                for child in sorted(tf.io.gfile.listdir(m)):
                    c = posixpath.join(m, child.rstrip("/"))
                    if isdir(c) and _is_run_dir(c):
                        found.append(c)
    return sorted(dict.fromkeys(found))


# ------------------------------------------------------------------------------------------------
# One row per run.


def _is_loss(tag: str) -> bool:
    return "loss" in tag


def _eval_history(workdir: str, results, eval_long: pd.DataFrame) -> pd.DataFrame:
    """Wide frame, one row per evaluation (step, full, num_examples, <tags>...), sorted by step."""
    hist = None
    if isinstance(results, dict) and isinstance(results.get("history"), list):
        recs = [h for h in results["history"] if isinstance(h, dict) and "step" in h]
        if recs:
            hist = pd.DataFrame(recs)
    if hist is None and isinstance(results, dict) and isinstance(results.get("latest"), dict):
        if "step" in results["latest"]:
            hist = pd.DataFrame([results["latest"]])
    events = None
    if not eval_long.empty:
        events = eval_long.pivot_table(index="step", columns="tag", values="value", aggfunc="last")
        events = events.reset_index()
        events.columns.name = None
    if hist is None or hist.empty:
        if events is None:
            return pd.DataFrame(columns=["step", "full"])
        hist = events
    elif events is not None:
        # Tags logged to the event files but not to eval_results.json (e.g. per-step accuracies)
        # are joined on the step.
        extra = [c for c in events.columns if c != "step" and c not in hist.columns]
        if extra:
            hist = hist.merge(events[["step", *extra]], on="step", how="left")
    if "full" not in hist:
        hist["full"] = np.nan
    hist["step"] = pd.to_numeric(hist["step"], errors="coerce")
    hist = hist.dropna(subset=["step"]).drop_duplicates("step", keep="last")
    return hist.sort_values("step", kind="stable").reset_index(drop=True)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    cols = []
    for c in frame.columns:
        if c in _NON_METRIC_KEYS:
            continue
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            cols.append(c)
    return cols


def table_columns(flat: dict) -> dict:
    """A flattened config as table cells: a list-valued field as JSON text, so that the column stays
    hashable (group-by, varying fields)."""
    return {k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in flat.items()}


def load_run(workdir: str) -> dict:
    """Summarises one workdir into a flat dict (one table row); see the module docstring for columns."""
    workdir = workdir.rstrip("/")
    notes: list[str] = []
    row: dict = {"workdir": workdir, "run_name": posixpath.basename(workdir)}

    config = read_run_json(posixpath.join(workdir, "config.json"), notes)
    config_cols: list[str] = []
    if isinstance(config, dict):
        flat = table_columns(upgrade_config(flatten_config(config)))
        config_cols = list(flat)
        row.update(flat)
    summary = read_run_json(posixpath.join(workdir, "run_summary.json"), notes)
    summary = summary if isinstance(summary, dict) else {}
    results = read_run_json(posixpath.join(workdir, "eval_results.json"), notes)
    row["experiment_id"] = (
        (config or {}).get("experiment_id") or summary.get("experiment_id") or row["run_name"]
    )
    _add_study_axes(row)

    # Scalars: event files, else metrics.jsonl (read at most once, only when needed).
    cache: dict = {}

    def jsonl() -> pd.DataFrame:
        if "v" not in cache:
            cache["v"] = read_metrics_jsonl(workdir, notes)
        return cache["v"]

    train_long = split_scalars(workdir, "train", notes, jsonl)
    eval_long = split_scalars(workdir, "eval", notes, jsonl)
    if train_long.empty:
        notes.append("no train scalars")
    else:  # Final train values: last logged value per tag.
        last = train_long.sort_values("step", kind="stable").groupby("tag").last()
        for tag, v in last["value"].items():
            row[f"final_train.{tag}"] = float(v)
    _add_eval_columns(row, _eval_history(workdir, results, eval_long), notes)
    _add_summary_columns(row, summary, train_long, eval_long)

    for n in notes:
        log.warning("%s: %s", workdir, n)
    row["notes"] = "; ".join(notes)
    row["_config_columns"] = config_cols
    return row


def _add_study_axes(row: dict) -> None:
    """Derived study axes: data config size/augmentations, T×n and the paper's effective depth."""
    puzzles, aug = parse_data_config(row.get("data.config"))
    row.setdefault("train_puzzles", puzzles)
    row.setdefault("num_aug", aug)
    h, lc, layers = (row.get(f"model.{k}") for k in ("H_cycles", "L_cycles", "L_layers"))
    nums = [x for x in (h, lc, layers) if isinstance(x, (int, float)) and not isinstance(x, bool)]
    row["T_x_n"] = h * lc if len(nums) == 3 else math.nan
    row["effective_depth"] = h * (lc + 1) * layers if len(nums) == 3 else math.nan


def _add_eval_columns(row: dict, hist: pd.DataFrame, notes: list[str]) -> None:
    """Eval columns: final (last full eval, else last eval) and best (over all evals)."""
    if hist.empty:
        notes.append("no evaluation yet")
        row["final_eval_step"] = math.nan
        row["final_eval_full"] = math.nan
        return
    full = hist[hist["full"] == True]  # noqa: E712 - NaN/None must count as False.
    final = (full if not full.empty else hist).iloc[-1]
    row["final_eval_step"] = int(final["step"])
    row["final_eval_full"] = bool(final["full"] == True)  # noqa: E712
    if "num_examples" in hist:
        row["final_eval_num_examples"] = final.get("num_examples", math.nan)
    for tag in _metric_columns(hist):
        row[f"final_eval.{tag}"] = float(final[tag]) if pd.notna(final[tag]) else math.nan
        col = pd.to_numeric(hist[tag], errors="coerce")
        if col.notna().any():
            idx = col.idxmin() if _is_loss(tag) else col.idxmax()
            row[f"best_eval.{tag}"] = float(col[idx])
            row[f"best_eval_step.{tag}"] = int(hist.loc[idx, "step"])


def _add_summary_columns(
    row: dict, summary: dict, train_long: pd.DataFrame, eval_long: pd.DataFrame
) -> None:
    """Run summary fields, with fallbacks from the logs where run_summary.json lacks them."""
    for k in _SUMMARY_FIELDS:
        row[k] = summary.get(k, math.nan)
    best = summary.get("best") or {}  # the run's best checkpoint (trm_tf/best.py), when it kept one
    for k in ("metric", "value", "step"):
        row[f"best_checkpoint.{k}"] = best.get(k, math.nan)
    if not isinstance(row["status"], str):
        row["status"] = "unknown"
    all_long = pd.concat([train_long, eval_long], ignore_index=True)
    if pd.isna(row["step"]) and not all_long.empty:
        row["step"] = int(all_long["step"].max())
    if pd.isna(row["total_steps"]):
        row["total_steps"] = row.get("train.total_steps", math.nan)
        if isinstance(row["total_steps"], (int, float)) and row["total_steps"] < 0:
            row["total_steps"] = math.nan
    if pd.isna(row["wall_time_s"]) and not all_long.empty:
        t = all_long["time"].dropna()
        row["wall_time_s"] = float(t.max() - t.min()) if len(t) > 1 else math.nan
    if pd.isna(row["examples_per_s"]) and not train_long.empty:
        eps = train_long[train_long["tag"] == "examples_per_s"]["value"]
        # Median: the first logging window includes compilation.
        row["examples_per_s"] = float(eps.median()) if len(eps) else math.nan
    batch = row.get("train.global_batch_size", math.nan)
    try:
        row["train_flops"] = (
            float(row["flops_per_example_train"]) * float(batch) * float(row["step"])
        )
    except (TypeError, ValueError):
        row["train_flops"] = math.nan


_FRONT = ["experiment_id", "status", "step", "total_steps"]


def load_runs(paths_or_globs: Sequence[str] | str) -> pd.DataFrame:
    """Loads every matching workdir into a table, one row per run.

    Args:
      paths_or_globs: Workdirs or globs of workdirs, local or gs:// (a single string is accepted too).

    Returns:
      DataFrame sorted by experiment_id then workdir; columns as described in the module docstring.
      `df.attrs["config_columns"]` lists the flattened config columns. Empty (no rows) when nothing matches.
    """
    if isinstance(paths_or_globs, str):
        paths_or_globs = [paths_or_globs]
    rows = [load_run(w) for w in find_workdirs(paths_or_globs)]
    config_cols: list[str] = []
    for r in rows:
        for c in r.pop("_config_columns"):
            if c not in config_cols:
                config_cols.append(c)
    df = pd.DataFrame(rows)
    if df.empty:
        df.attrs["config_columns"] = []
        return df
    front = [c for c in _FRONT if c in df]
    df = df[front + [c for c in df.columns if c not in front]]
    df = df.sort_values(["experiment_id", "workdir"], kind="stable").reset_index(drop=True)
    df.attrs["config_columns"] = config_cols
    return df


def config_columns(df: pd.DataFrame) -> list[str]:
    """The flattened config columns of a `load_runs` table (from attrs, else by section prefix)."""
    cols = df.attrs.get("config_columns")
    if cols:
        return [c for c in cols if c in df]
    sections = ("data.", "model.", "optim.", "train.", "eval.", "runtime.")
    return [c for c in df.columns if c == "seed" or c.startswith(sections)]


def _hashable(v):
    if isinstance(v, float) and math.isnan(v):
        return "<nan>"  # NaN != NaN would make every missing value look distinct.
    if v is None:
        return "<nan>"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def varying_fields(
    df: pd.DataFrame, columns: Iterable[str] | None = None, include_missing: bool = False
) -> list[str]:
    """Config columns whose values differ across the rows of `df`.

    `experiment_id` is excluded: it names the runs rather than describing them; by default so are the
    fields that are not hyperparameters (`trm_tf.summaries.is_hparam`: data paths, log and checkpoint
    cadences, runtime settings), which do not tell runs apart as experiments. By default a missing value
    (run without config.json, or a field older configs lack) is ignored, so one partial run does not make
    every field "vary".

    Args:
      df: A `load_runs` table (or any subset of its rows).
      columns: Columns to consider; default: the config columns.
      include_missing: Count a missing value as one more distinct value.

    Returns:
      Column names in table order.
    """
    if columns is None:  # hyperparameters and the seed: not paths, log cadences or runtime settings
        columns = [c for c in config_columns(df) if c == "seed" or is_hparam(c)]
    cols = list(columns)
    out = []
    for c in cols:
        if c == "experiment_id" or c not in df:
            continue
        values = df[c].map(_hashable)
        if not include_missing:
            values = values[values != "<nan>"]
        if values.nunique() > 1:
            out.append(c)
    return out
