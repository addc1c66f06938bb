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
    and `train_flops` = flops_per_example_train × global batch × step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import posixpath
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow.python.util import deprecation

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


# ------------------------------------------------------------------------------------------------
# Small gfile helpers.


def _join(*parts: str) -> str:
    # posixpath keeps gs:// intact (os.path.join would too on Linux, but not on Windows).
    return posixpath.join(*parts)


def _exists(path: str) -> bool:
    try:
        return tf.io.gfile.exists(path)
    except tf.errors.OpError:
        return False


def _isdir(path: str) -> bool:
    try:
        return tf.io.gfile.isdir(path)
    except tf.errors.OpError:
        return False


def _read_json(path: str, notes: list[str]):
    """Returns the parsed JSON file, or None (with a note) when missing or unparsable."""
    if not _exists(path):
        notes.append(f"missing {posixpath.basename(path)}")
        return None
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            return json.loads(f.read())
    except (ValueError, tf.errors.OpError) as e:
        # A file being rewritten at the moment of reading can be empty or cut short.
        notes.append(f"unreadable {posixpath.basename(path)} ({type(e).__name__})")
        return None


def _is_run_dir(path: str) -> bool:
    if any(_exists(_join(path, m)) for m in _RUN_MARKERS):
        return True
    return any(_isdir(_join(path, s)) for s in _SPLIT_DIRS)


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
            matches = [arg] if _exists(arg) else []
        for m in matches:
            m = m.rstrip("/")
            if not _isdir(m):
                continue
            if _is_run_dir(m):
                found.append(m)
            else:
                for child in sorted(tf.io.gfile.listdir(m)):
                    c = _join(m, child.rstrip("/"))
                    if _isdir(c) and _is_run_dir(c):
                        found.append(c)
    return sorted(dict.fromkeys(found))


# ------------------------------------------------------------------------------------------------
# Scalars from event files and metrics.jsonl.


def _event_value(value) -> float | None:
    """Reads a scalar from a Summary.Value: TF1 `simple_value` or a TF2 scalar tensor."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        try:
            arr = tf.make_ndarray(value.tensor)
        except Exception:  # noqa: BLE001 - a non-numeric tensor summary is simply not a scalar.
            return None
        if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
            return float(arr.reshape(()))
    return None


class _Truncated(Exception):
    """An event file ends in a partial or corrupt record."""


def _iter_events(path: str):
    """Yields the Event protos of one file; raises _Truncated after the last complete record."""
    it = tf.compat.v1.train.summary_iterator(path)
    while True:
        try:
            event = next(it)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.OpError) as e:
            raise _Truncated(str(e)) from e
        yield event


def _silence_deprecation():
    silence = getattr(deprecation, "silence", None)
    return silence() if silence is not None else contextlib.nullcontext()


def _read_event_dir(logdir: str, notes: list[str]) -> pd.DataFrame:
    """Reads every scalar of every event file in `logdir` into a long frame (tag, step, value, time).

    Several event files (restarts) are concatenated in file-name order, which is creation-time order; for a
    repeated (tag, step) the value written last wins, as TensorBoard shows it.
    """
    rows: list[tuple[str, int, float, float, int]] = []
    try:
        files = sorted(tf.io.gfile.glob(_join(logdir, "events.out.tfevents.*")))
    except tf.errors.OpError:
        files = []
    for order, path in enumerate(files):
        try:
            # summary_iterator is ~1000x faster than a tf.data.TFRecordDataset per small file; silence()
            # hides the deprecation notice of the tf_record_iterator it wraps.
            with _silence_deprecation():
                for event in _iter_events(path):
                    if not event.HasField("summary"):
                        continue
                    for v in event.summary.value:
                        x = _event_value(v)
                        if x is not None:
                            rows.append((v.tag, int(event.step), x, float(event.wall_time), order))
        except _Truncated as e:
            # A file still being written (or cut by preemption) ends in a partial record: keep the
            # complete records before it.
            notes.append(f"truncated {posixpath.relpath(path, posixpath.dirname(logdir))}")
            log.debug("stopped reading %s: %s", path, e)
    if not rows:
        return pd.DataFrame(columns=["tag", "step", "value", "time"])
    df = pd.DataFrame(rows, columns=["tag", "step", "value", "time", "order"])
    df = df.sort_values(["order", "time"], kind="stable")
    df = df.drop_duplicates(["tag", "step"], keep="last").drop(columns="order")
    return df.sort_values(["tag", "step"], kind="stable").reset_index(drop=True)


def _read_metrics_jsonl(workdir: str, notes: list[str]) -> pd.DataFrame:
    """Reads metrics.jsonl into a long frame (split, tag, step, value, time); bad lines are skipped."""
    path = _join(workdir, "metrics.jsonl")
    rows = []
    if not _exists(path):
        return pd.DataFrame(columns=["split", "tag", "step", "value", "time"])
    bad = 0
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            text = f.read()
    except tf.errors.OpError:
        notes.append("unreadable metrics.jsonl")
        text = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            split, step = rec["split"], int(rec["step"])
        except (ValueError, KeyError, TypeError):
            bad += 1  # Usually the last line, cut mid-write.
            continue
        t = rec.get("time", math.nan)
        for k, v in rec.items():
            if k in ("split", "step", "time") or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                rows.append((split, k, step, float(v), float(t) if t is not None else math.nan))
    if bad:
        notes.append(f"{bad} bad line(s) in metrics.jsonl")
    df = pd.DataFrame(rows, columns=["split", "tag", "step", "value", "time"])
    return df.drop_duplicates(["split", "tag", "step"], keep="last").reset_index(drop=True)


def _split_scalars(workdir: str, split: str, notes: list[str], jsonl=None) -> pd.DataFrame:
    """Long frame (tag, step, value, time) for one split: event files first, metrics.jsonl as fallback.

    `jsonl` is a zero-argument callable returning the parsed metrics.jsonl (lets callers share one read).
    """
    df = _read_event_dir(_join(workdir, split), notes)
    if df.empty:
        j = jsonl() if jsonl is not None else _read_metrics_jsonl(workdir, notes)
        df = j[j["split"] == split].drop(columns="split").reset_index(drop=True)
    return df


def load_scalars(workdir: str, split: str, tag: str, warn: bool = True) -> pd.DataFrame:
    """One logged curve of one run.

    Reads `workdir/<split>/events.out.tfevents.*` and falls back to `workdir/metrics.jsonl` when the split
    has no event file. Missing tags give an empty frame (and a logged warning), never an exception.

    Args:
      workdir: Run directory, local or gs://.
      split: "train" or "eval".
      tag: Scalar tag, e.g. "exact_accuracy", "loss", "exact_accuracy/step_4".
      warn: Log a warning when the tag is missing or a file is truncated.

    Returns:
      DataFrame with integer column `step` and float column `value`, sorted by step, one row per step.
    """
    notes: list[str] = []
    df = _split_scalars(workdir.rstrip("/"), split, notes)
    out = df[df["tag"] == tag][["step", "value"]].sort_values("step").reset_index(drop=True)
    out["step"] = out["step"].astype(np.int64)
    out["value"] = out["value"].astype(float)
    if warn:
        if out.empty:
            log.warning("%s: no %s/%s scalars", workdir, split, tag)
        for n in notes:
            log.warning("%s: %s", workdir, n)
    return out


# ------------------------------------------------------------------------------------------------
# One row per run.


def flatten_config(cfg: dict, prefix: str = "") -> dict:
    """Flattens nested dicts into dotted keys; lists become JSON strings so that they stay hashable."""
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_config(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


# Flattened config keys of config.json files written before the `act` section existed, and where each
# field lives now (same meaning, same value).
OLD_TO_NEW_KEYS = {
    "model.halt_max_steps": "act.halt_max_steps",
    "model.halt_exploration_prob": "act.halt_exploration_prob",
    "model.halt_exploration_final": "act.halt_exploration_final",
    "model.loss_type": "act.loss_type",
    "model.halt_penalty": "act.halt_penalty",
    "model.recursion_reg": "act.recursion_reg",
    "train.jit_compile": "runtime.jit_compile",
}
# Fields that old files wrote but nothing read.
REMOVED_KEYS = ("eval.report_adaptive_halting",)
# Old "-1 = derive" sentinels, now None (null in config.json).
_OLD_SENTINELS = (
    "train.total_steps",
    "train.eval_every_steps",
    "eval.halt_max_steps",
    "act.halt_exploration_final",
)
# Model switches an arch does not have: old files listed them (as off) for every arch, new ones do not.
_NOT_KEYWORDS = {
    "hrm": ("model.mlp_t", "model.attention_window"),
    "transformer": ("model.attention_window",),
}


def upgrade_config(flat: dict) -> dict:
    """A flattened config of any age in today's layout, so old and new runs tabulate in one table.

    Files written before the `act` section (they have `model.halt_max_steps`) get their ACT/loss fields
    and `train.jit_compile` moved (OLD_TO_NEW_KEYS), `act.q_continue_target` added with the value the
    trainer then derived from the arch (True for "hrm") and `act.halt_rule` with the rule it used, the arch's non-keywords and removed fields
    dropped, and -1 sentinels turned into None. A current file comes back unchanged.
    """
    if "model.halt_max_steps" not in flat:
        out = dict(flat)
        if (
            "act.q_continue_target" in out and "act.halt_rule" not in out
        ):  # before the explicit rule
            out["act.halt_rule"] = (
                "q_halt_vs_continue" if out["act.q_continue_target"] else "q_halt"
            )
        return out
    out = {OLD_TO_NEW_KEYS.get(k, k): v for k, v in flat.items() if k not in REMOVED_KEYS}
    arch = out.get("model.arch", "trm")
    out["act.q_continue_target"] = arch == "hrm"
    # The halting rule those runs trained with: HRM's q_halt > q_continue, TRM's q_halt > 0 otherwise
    # (the transformer baseline then used TRM's rule).
    out["act.halt_rule"] = "q_halt_vs_continue" if arch == "hrm" else "q_halt"
    for k in _NOT_KEYWORDS.get(arch, ()):
        out.pop(k, None)
    for k in _OLD_SENTINELS:
        if isinstance(out.get(k), (int, float)) and out[k] < 0:
            out[k] = None
    return out


def parse_data_config(name) -> tuple[float, float]:
    """Training puzzles and augmentations per puzzle from a data config name like `sub1000_aug1000`.

    Returns NaN for a part the name does not state.
    """
    if not isinstance(name, str):
        return math.nan, math.nan
    sub = re.search(r"sub(?:sample)?[_-]?(\d+)", name)
    aug = re.search(r"aug[_-]?(\d+)", name)
    return (float(sub.group(1)) if sub else math.nan, float(aug.group(1)) if aug else math.nan)


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


def load_run(workdir: str) -> dict:
    """Summarises one workdir into a flat dict (one table row); see the module docstring for columns."""
    workdir = workdir.rstrip("/")
    notes: list[str] = []
    row: dict = {"workdir": workdir, "run_name": posixpath.basename(workdir)}

    config = _read_json(_join(workdir, "config.json"), notes)
    config_cols: list[str] = []
    if isinstance(config, dict):
        flat = upgrade_config(flatten_config(config))
        config_cols = list(flat)
        row.update(flat)
    summary = _read_json(_join(workdir, "run_summary.json"), notes)
    summary = summary if isinstance(summary, dict) else {}
    results = _read_json(_join(workdir, "eval_results.json"), notes)

    row["experiment_id"] = (
        (config or {}).get("experiment_id") or summary.get("experiment_id") or row["run_name"]
    )

    # Derived study axes.
    puzzles, aug = parse_data_config(row.get("data.config"))
    row.setdefault("train_puzzles", puzzles)
    row.setdefault("num_aug", aug)
    h, lc, layers = (row.get(f"model.{k}") for k in ("H_cycles", "L_cycles", "L_layers"))
    nums = [x for x in (h, lc, layers) if isinstance(x, (int, float)) and not isinstance(x, bool)]
    row["T_x_n"] = h * lc if len(nums) == 3 else math.nan
    row["effective_depth"] = h * (lc + 1) * layers if len(nums) == 3 else math.nan

    # Scalars: event files, else metrics.jsonl (read at most once, only when needed).
    cache: dict = {}

    def jsonl() -> pd.DataFrame:
        if "v" not in cache:
            cache["v"] = _read_metrics_jsonl(workdir, notes)
        return cache["v"]

    train_long = _split_scalars(workdir, "train", notes, jsonl)
    eval_long = _split_scalars(workdir, "eval", notes, jsonl)
    if train_long.empty:
        notes.append("no train scalars")

    # Final train values: last logged value per tag.
    if not train_long.empty:
        last = train_long.sort_values("step", kind="stable").groupby("tag").last()
        for tag, v in last["value"].items():
            row[f"final_train.{tag}"] = float(v)

    # Eval: final (last full eval, else last eval) and best (over all evals).
    hist = _eval_history(workdir, results, eval_long)
    if hist.empty:
        notes.append("no evaluation yet")
        row["final_eval_step"] = math.nan
        row["final_eval_full"] = math.nan
    else:
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

    # Run summary, with fallbacks from the logs.
    for k in _SUMMARY_FIELDS:
        row[k] = summary.get(k, math.nan)
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

    for n in notes:
        log.warning("%s: %s", workdir, n)
    row["notes"] = "; ".join(notes)
    row["_config_columns"] = config_cols
    return row


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

    `experiment_id` is excluded: it names the runs rather than describing them. By default a missing value
    (run without config.json, or a field older configs lack) is ignored, so one partial run does not make
    every field "vary".

    Args:
      df: A `load_runs` table (or any subset of its rows).
      columns: Columns to consider; default: the config columns.
      include_missing: Count a missing value as one more distinct value.

    Returns:
      Column names in table order.
    """
    cols = list(columns) if columns is not None else config_columns(df)
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
