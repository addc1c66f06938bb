"""Fabricates trainer work directories with known values, for tests of the analysis tools.

`make_fake_run` writes the files of docs/run_directory.md (config.json from `configs.args.build(None)`,
tf.summary event files in train/ and eval/, metrics.jsonl, eval_results.json, run_summary.json), any
of which can be left out to imitate a partial run.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping

import tensorflow as tf

from configs import args


def _set_dotted(cfg, key: str, value) -> None:
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value


def make_fake_run(
    workdir: str,
    *,
    experiment_id: str = "fake",
    overrides: Mapping[str, object] | None = None,
    train: Mapping[int, Mapping[str, float]] | None = None,
    evals: Mapping[int, Mapping[str, float]] | None = None,
    full_eval_steps: tuple[int, ...] = (),
    summary: Mapping[str, object] | None = None,
    write_config: bool = True,
    write_events: bool = True,
    write_jsonl: bool = True,
    write_eval_results: bool = True,
    start_time: float = 1.7e9,
    seconds_per_step: float = 0.5,
) -> str:
    """Writes a synthetic run directory and returns its path.

    Args:
      workdir: Directory to create (local or gs://).
      experiment_id: Written to config.json and run_summary.json.
      overrides: Dotted config keys to change from `configs.args.build(None)`, e.g.
        {"model.hidden_size": 256}.
      train: {step: {tag: value}} training scalars.
      evals: {step: {tag: value}} evaluation scalars.
      full_eval_steps: Eval steps flagged `"full": true` in eval_results.json.
      summary: Fields of run_summary.json (experiment_id is added); None = no run_summary.json.
      write_config: Write config.json.
      write_events: Write tf.summary event files for train and eval.
      write_jsonl: Write metrics.jsonl.
      write_eval_results: Write eval_results.json (when `evals` is given).
      start_time: Unix time of step 0 (metrics.jsonl `time`).
      seconds_per_step: Added to `start_time` per step.

    Returns:
      `workdir`.
    """
    tf.io.gfile.makedirs(workdir)
    train, evals = dict(train or {}), dict(evals or {})
    if write_config:
        _write_config(workdir, experiment_id, overrides or {})
    if write_events:
        _write_events(workdir, train, evals)
    if write_jsonl:
        _write_jsonl(workdir, train, evals, start_time, seconds_per_step)
    if write_eval_results and evals:
        _write_eval_results(workdir, evals, full_eval_steps)
    if summary is not None:
        _write_json(workdir, "run_summary.json", {"experiment_id": experiment_id, **summary})
    return workdir


def _write_json(workdir: str, name: str, value) -> None:
    with tf.io.gfile.GFile(posixpath.join(workdir, name), "w") as f:
        json.dump(value, f, indent=2)


def _write_config(workdir: str, experiment_id: str, overrides: Mapping[str, object]) -> None:
    cfg = args.build(None)
    cfg.experiment_id = experiment_id
    for k, v in overrides.items():
        _set_dotted(cfg, k, v)
    with tf.io.gfile.GFile(posixpath.join(workdir, "config.json"), "w") as f:
        f.write(cfg.to_json_best_effort(indent=2))


def _write_events(workdir: str, train: dict, evals: dict) -> None:
    for split, data in (("train", train), ("eval", evals)):
        if not data:
            continue
        writer = tf.summary.create_file_writer(posixpath.join(workdir, split))
        with writer.as_default():
            for step in sorted(data):
                for tag, value in data[step].items():
                    tf.summary.scalar(tag, value, step=step)
        writer.close()


def _write_jsonl(workdir, train, evals, start_time: float, seconds_per_step: float) -> None:
    lines = []
    for split, data in (("train", train), ("eval", evals)):
        for step in sorted(data):
            rec = {"split": split, "step": step, "time": start_time + step * seconds_per_step}
            rec.update({k: float(v) for k, v in data[step].items()})
            lines.append(json.dumps(rec))
    with tf.io.gfile.GFile(posixpath.join(workdir, "metrics.jsonl"), "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def _write_eval_results(workdir: str, evals: dict, full_eval_steps: tuple[int, ...]) -> None:
    history = []
    for step in sorted(evals):
        full = step in full_eval_steps
        entry = {"step": step, "num_examples": 1000 if full else 100, "full": full}
        entry.update({k: float(v) for k, v in evals[step].items()})
        history.append(entry)
    _write_json(workdir, "eval_results.json", {"latest": history[-1], "history": history})
