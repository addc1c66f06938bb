r"""Exact accuracy of trained Sudoku runs split by the test puzzles' backtrack rating, per run and per arm.

  python -m trm_tf.tools.by_rating 'runs/pilot/pilot_cpu_*' --which=best --out=results/pilot_cpu/by_rating.md
  python -m trm_tf.tools.by_rating 'runs/pilot/pilot_cpu_baseline-seed*' --which=best,averaged_best

On a task that mixes easy and search-needing puzzles (`sudoku_extreme/generated_extreme_mix`: about half
rating 0, half rating >= 1; docs/datasets.md), one exact-accuracy figure cannot tell a model that solves
the easy half from one that searches. This tool re-evaluates each run's checkpoint (`--which=best`: the
run's best checkpoint, `RUN_DIR/best`; `final`: its newest one) on the whole test split, exactly as the
run's evaluation does (EMA weights when the run trains with EMA, all N_sup supervision steps from a fresh
carry, a puzzle counts when every cell is right), and splits the result by the rating the build recorded
for each test puzzle (`metadata.json` "ratings", by group index; `sudoku_solver.rating`: guesses whose
propagation ends in a contradiction, 0 = naked and hidden singles solve it).

`--which=averaged_best` (or `averaged`) scores the raw-weight average that `python -m
trm_tf.tools.average_checkpoints --around=best` (`--around=last`) wrote (E4.4); with several checkpoints,
`--which=best,averaged_best`, each arm also gets the difference of each later one from the first.

Per run it writes `RUN_DIR/eval_by_rating.json` (re-used by later calls unless `--recompute`) and checks
that the split's overall exact accuracy equals the one the run logged at that step (a mismatch is
printed). Runs that differ only by seed form an arm (as in `python -m trm_tf.analysis report`), reported
as mean ± 95% Student-t interval per rating band.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import posixpath  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfds_builders import builder_utils  # noqa: E402
from trm_tf.analysis import runs, seeds  # noqa: E402
from trm_tf.data import datasets  # noqa: E402
from trm_tf.tools import restore  # noqa: E402
from trm_tf.tools.solve import run_steps  # noqa: E402
from trm_tf.workdir import RunDir, read_json, write_json  # noqa: E402

RESULT_FILE = "eval_by_rating.json"
DEFAULT_BANDS = "0,1-"
BATCH = 250


class RatingError(ValueError):
    """A run or its dataset cannot be split by rating; the message is one line saying why."""


def parse_bands(text: str) -> list[tuple[int, int | None]]:
    """ "0,1,2-3,4-" -> [(0, 0), (1, 1), (2, 3), (4, None)]: inclusive rating bands, None = open."""
    bands = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:(-)\s*(\d+)?)?\s*", item)
        if not m:
            raise RatingError(f"bad rating band {item!r} (use e.g. 0,1,2-3,4-)")
        lo = int(m.group(1))
        hi = (int(m.group(3)) if m.group(3) else None) if m.group(2) else lo
        if hi is not None and hi < lo:
            raise RatingError(f"bad rating band {item!r}: upper bound below lower bound")
        bands.append((lo, hi))
    return bands


def band_label(band: tuple[int, int | None]) -> str:
    lo, hi = band
    if hi is None:
        return f"rating >= {lo}"
    return f"rating {lo}" if lo == hi else f"rating {lo}-{hi}"


def test_ratings(config, data_dir: str | None = None) -> np.ndarray:
    """The backtrack rating of every test puzzle of the run's dataset, by group index."""
    name = f"{config.data.name}/{config.data.config}"
    try:
        meta = builder_utils.read_metadata(
            datasets.expand_dir(data_dir or config.data.data_dir), name
        )
    except FileNotFoundError as e:
        raise RatingError(f"{name} is not built in {data_dir or config.data.data_dir}: {e}") from e
    if "ratings" not in meta:
        raise RatingError(
            f"{name} records no ratings (only the generated search configs of sudoku_extreme do)"
        )
    return np.asarray(meta["ratings"]["test"], np.int64)


def test_split(config, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """inputs, labels ([N, seq_len] int32) and group ([N]) of the run's whole test split (read once per
    dataset and process: the runs of a sweep share it)."""
    return _read_split(f"{config.data.name}/{config.data.config}", data_dir or config.data.data_dir)


@functools.cache
def _read_split(name: str, data_dir: str) -> dict[str, np.ndarray]:
    builder = datasets.tfds_builder(name, data_dir)
    ds = builder.as_dataset(split="test", shuffle_files=False)
    out = {"inputs": [], "labels": [], "group": []}
    for ex in ds.batch(1024).as_numpy_iterator():
        for k in out:
            out[k].append(ex[k])
    return {
        "inputs": np.concatenate(out["inputs"]).astype(np.int32),
        "labels": np.concatenate(out["labels"]).astype(np.int32),
        "group": np.concatenate(out["group"]).astype(np.int64),
    }


def exact_per_step(model, inputs: np.ndarray, labels: np.ndarray, num_steps: int) -> np.ndarray:
    """[N, num_steps] bool: every cell right after each supervision step (evaluation mode)."""
    out = []
    for i in range(0, len(inputs), BATCH):
        preds = run_steps(model, inputs[i : i + BATCH], num_steps)["preds"]  # [n, steps, seq]
        out.append(np.all(preds == labels[i : i + BATCH, None, :], axis=-1))
    return np.concatenate(out)


WHICH = {
    "best": "the best checkpoint (RUN_DIR/best, eval.best_metric), EMA weights when the run has them",
    "final": "the newest checkpoint, EMA weights when the run has them",
    "averaged_best": "the average_checkpoints --around=best output (RUN_DIR/averaged_best/ckpt), raw "
    "weights averaged",
    "averaged": "the average_checkpoints output (RUN_DIR/averaged/ckpt), raw weights averaged",
}


def checkpoint_of(run_dir: str, which: str) -> tuple[str, int, bool]:
    """(checkpoint to restore, its training step, whether to use EMA weights) for `which` (`WHICH`).
    The averaged checkpoints hold averaged raw weights and no EMA; their step is that of the best /
    newest checkpoint they end with."""
    summary = RunDir(run_dir).summary()
    if which not in WHICH:
        raise RatingError(f"--which={which}: use one of {', '.join(WHICH)}")
    if which in ("best", "averaged_best"):
        best = summary.get("best") or {}
        if "step" not in best:
            raise RatingError(f"{run_dir}: run_summary.json names no best checkpoint")
        if which == "best":
            return posixpath.join(run_dir, "best"), int(best["step"]), True
    if which.startswith("averaged"):
        prefix = posixpath.join(run_dir, which, "ckpt")
        if not tf.io.gfile.exists(prefix + ".index"):
            around = "best" if which == "averaged_best" else "last"
            raise RatingError(
                f"{run_dir}: no {which}/ckpt; write it with python -m "
                f"trm_tf.tools.average_checkpoints --checkpoint={run_dir} --around={around}"
            )
        if which == "averaged_best":
            return prefix, int(best["step"]), False
    prefix_last = restore.checkpoint_prefix(run_dir)
    m = re.search(r"ckpt-(\d+)$", prefix_last)
    if not m:
        raise RatingError(f"{run_dir}: cannot tell the step of checkpoint {prefix_last}")
    return (prefix if which == "averaged" else run_dir), int(m.group(1)), which == "final"


def logged_exact(run_dir: str, step: int) -> float | None:
    """The exact accuracy the run's own evaluation logged at `step` (None when it did not evaluate there)."""
    for entry in RunDir(run_dir).eval_results().get("history", []):
        if int(entry.get("step", -1)) == step and "exact_accuracy" in entry:
            return float(entry["exact_accuracy"])
    return None


def split_run(run_dir: str, which: str, data_dir: str | None = None, where=None) -> dict:
    """Evaluates one run's checkpoint on the whole test split; per rating value: n and solved counts
    after each supervision step. `where`: `checkpoint_of(run_dir, which)` when already known."""
    config = restore.read_run_config(run_dir)
    checkpoint, step, use_ema = where or checkpoint_of(run_dir, which)
    ratings = test_ratings(config, data_dir)
    data = test_split(config, data_dir)
    model = restore.load_model(config, checkpoint, use_ema=use_ema)
    n_steps = int(config.act.halt_max_steps)
    solved = exact_per_step(model, data["inputs"], data["labels"], n_steps)
    rating = ratings[data["group"]]
    per_rating = {
        str(int(r)): {
            "n": int((rating == r).sum()),
            "solved_per_step": [int(x) for x in solved[rating == r].sum(0)],
        }
        for r in np.unique(rating)
    }
    return {
        "which": which,
        "step": step,
        "num_examples": int(len(rating)),
        "exact_accuracy": float(solved[:, -1].mean()),
        # The run's own evaluation scored the EMA weights of `best` / `final` only.
        "logged_exact_accuracy": logged_exact(run_dir, step) if use_ema else None,
        "per_rating": per_rating,
    }


def load_or_split(run_dir: str, which: str, data_dir: str | None, recompute: bool) -> dict:
    """The run's split for `which`, from RUN_DIR/eval_by_rating.json when it holds one for the same
    checkpoint step, else computed (and stored there)."""
    path = posixpath.join(run_dir, RESULT_FILE)
    stored = read_json(path, {}) or {}
    where = checkpoint_of(run_dir, which)
    if not recompute and stored.get(which, {}).get("step") == where[1]:
        return stored[which]
    result = split_run(run_dir, which, data_dir, where)
    stored[which] = result
    write_json(path, stored)
    return result


def band_accuracy(result: dict, band: tuple[int, int | None]) -> tuple[int, float]:
    """(puzzles in the band, exact accuracy after the last supervision step; nan when empty)."""
    lo, hi = band
    n = solved = 0
    for r, v in result["per_rating"].items():
        if int(r) >= lo and (hi is None or int(r) <= hi):
            n += v["n"]
            solved += v["solved_per_step"][-1]
    return n, (solved / n if n else math.nan)


def report_lines(run_dirs: list[str], results: dict, bands, whiches: list[str]) -> list[str]:
    """Markdown: one row per arm and checkpoint (mean ± 95% t interval over seeds, %), each later
    checkpoint's difference from the first, each arm's from the baseline arm (`seeds.baseline_arm`) and
    between the other arms (first checkpoint), paired by seed, and one row per run and checkpoint.
    `results[which][run_dir]` is a `split_run` result."""
    df = runs.load_runs(run_dirs)
    labels = [band_label(b) for b in bands]
    lines = [
        "Exact accuracy (%) on the whole test split by backtrack rating; arms: mean ± 95% Student-t "
        "interval over seeds [interval] (n). Checkpoints: "
        + "; ".join(f"`{w}` = {WHICH[w]}" for w in whiches)
        + ".",
        "",
        "| arm | checkpoint | seeds | puzzles per band | " + " | ".join(labels) + " | all |",
        "|---|---|---|---|" + "---|" * (len(labels) + 1),
    ]
    values, diffs = {}, []
    for arm, index in seeds.arm_groups(df):
        dirs = [df.loc[i, "workdir"] for i in index]
        # Each run's key for pairing checkpoints: its seed (its row when the config has none).
        keys = {df.loc[i, "workdir"]: (df.loc[i, "seed"] if "seed" in df else i) for i in index}
        for which in whiches:
            got = {d: results[which][d] for d in dirs if d in results[which]}
            if not got:
                continue
            per_band = [
                {keys[d]: 100 * band_accuracy(r, b)[1] for d, r in got.items()} for b in bands
            ]
            per_band.append({keys[d]: 100 * r["exact_accuracy"] for d, r in got.items()})
            values[arm, which] = per_band
            counts = [band_accuracy(next(iter(got.values())), b)[0] for b in bands]
            cells = [seeds.estimate(list(v.values())).text(1) for v in per_band]
            seed_list = ",".join(str(int(keys[d])) for d in got) if "seed" in df else ""
            lines.append(
                f"| {arm} | {which} | {seed_list or '–'} | {' / '.join(map(str, counts))} | "
                + " | ".join(cells)
                + " |"
            )
        for which in whiches[1:]:
            if (arm, whiches[0]) in values and (arm, which) in values:
                pairs = zip(values[arm, whiches[0]], values[arm, which])
                d = [seeds.difference(a, b) for a, b in pairs]
                diffs.append(
                    f"| {arm}: {which} − {whiches[0]} ({d[-1][1]}) | "
                    + " | ".join(e.text(1) for e, _ in d)
                    + " |"
                )
    arms = list(dict.fromkeys(arm for arm, _ in values))
    if len(arms) > 1:
        base, first = seeds.baseline_arm(arms), whiches[0]
        rest = [a for a in arms if a != base]
        compared = [(base, a) for a in rest] + [
            (a, b) for i, a in enumerate(rest) for b in rest[i + 1 :]
        ]
        for a, b in compared:
            if (a, first) in values and (b, first) in values:
                pairs = zip(values[a, first], values[b, first])
                d = [seeds.difference(x, y) for x, y in pairs]
                diffs.append(
                    f"| {b} − {a} ({first}, {d[-1][1]}) | "
                    + " | ".join(e.text(1) for e, _ in d)
                    + " |"
                )
    if diffs:
        lines += [
            "",
            "Differences (percentage points, 95% interval: paired by seed when both sides ran the "
            "same seeds, else Welch):",
            "",
            "| difference | " + " | ".join(labels) + " | all |",
            "|---|" + "---|" * (len(labels) + 1),
            *diffs,
        ]
    lines += [
        "",
        "| run | checkpoint | step | " + " | ".join(labels) + " | all | logged by the run |",
        "|---|---|---|" + "---|" * (len(labels) + 2),
    ]
    for d in run_dirs:
        for which in whiches:
            if d not in results[which]:
                continue
            r = results[which][d]
            cells = [f"{100 * band_accuracy(r, b)[1]:.1f}" for b in bands]
            logged = r["logged_exact_accuracy"]
            lines.append(
                f"| {posixpath.basename(d)} | {which} | {r['step']} | "
                + " | ".join(cells)
                + f" | {100 * r['exact_accuracy']:.1f} | "
                + ("–" if logged is None else f"{100 * logged:.1f}")
                + " |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trm_tf.tools.by_rating",
        description="Exact accuracy of Sudoku runs split by the test puzzles' backtrack rating.",
    )
    p.add_argument("runs", nargs="+", help="run directories or globs (local or gs://)")
    p.add_argument(
        "--which",
        default="best",
        help="checkpoint(s), comma-separated, the first the one others are compared with: "
        + ", ".join(WHICH),
    )
    p.add_argument("--bands", default=DEFAULT_BANDS, help="inclusive rating bands, e.g. 0,1,2-3,4-")
    p.add_argument("--data_dir", default="", help="TFDS data dir (default: each run's config)")
    p.add_argument("--out", default="", help="also write the markdown here")
    p.add_argument("--recompute", action="store_true", help="ignore stored eval_by_rating.json")
    a = p.parse_args(argv)
    try:
        bands = parse_bands(a.bands)
        whiches = [w.strip() for w in a.which.split(",") if w.strip()]
        for w in whiches:
            if w not in WHICH:
                raise RatingError(f"--which={w}: use one of {', '.join(WHICH)}")
        run_dirs = runs.find_workdirs(a.runs)
        if not run_dirs:
            raise RatingError(f"no run directories match {' '.join(a.runs)}")
        results, mismatches = {w: {} for w in whiches}, []
        for i, d in enumerate(run_dirs):
            for w in whiches:
                r = load_or_split(d, w, a.data_dir or None, a.recompute)
                results[w][d] = r
                logged = r["logged_exact_accuracy"]
                print(
                    f"[{i + 1}/{len(run_dirs)}] {posixpath.basename(d)} {w} step {r['step']}: exact "
                    f"{100 * r['exact_accuracy']:.1f}% (logged "
                    f"{'–' if logged is None else f'{100 * logged:.1f}%'})",
                    file=sys.stderr,
                )
                if (
                    logged is not None
                    and abs(logged - r["exact_accuracy"]) > 1.5 / r["num_examples"]
                ):
                    mismatches.append(f"{posixpath.basename(d)} ({w})")
    except (RatingError, restore.RestoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = "\n".join(report_lines(run_dirs, results, bands, whiches)) + "\n"
    print(text)
    if a.out:
        tf.io.gfile.makedirs(posixpath.dirname(a.out) or ".")
        with tf.io.gfile.GFile(a.out, "w") as f:
            f.write(text)
    if mismatches:
        print(
            "warning: the split's exact accuracy differs from the logged one by more than one puzzle "
            "in " + ", ".join(mismatches),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
