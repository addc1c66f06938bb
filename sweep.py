r"""Batch runner: trains catalogue experiments one after another, unattended and resumable.

  python sweep.py --list                                  # every id, its run, config, dataset
  python sweep.py --pattern='^exp02' --workdir_root=gs://BUCKET/runs --tpu=local \
      --data_dir=gs://BUCKET/tfds --continue-on-failure
  python sweep.py E2.3b exp08a --workdir_root=/tmp/runs --config_arg=runlocal --dry-run
  python sweep.py exp09e --workdir_root=/tmp/runs --extra="--config.train.total_steps=10"
  python sweep.py E2.1a E2.1b --seeds=0,1,2 --workdir_root=/tmp/runs --config_arg=runlocal --dry-run

Ids come from the registry `configs/catalogue.py:RUNS` (both naming schemes of the study, the paper's
other tasks and the contributions; `--list` shows them). Ids the study defined as the same run resolve
to one run, trained once in `<root>/<run_id>`. Each run is a subprocess
`python launch.py --config=<file>[:variant] --workdir=<root>/<run_id> [flags] [--extra ...]` with stdin
closed (nothing can prompt), its output streamed to the console and to `<root>/<run_id>/launch.log`.

With `--seeds=0,1,2` every selected run is trained once per seed, each into its own run directory
`<root>/<run_id>-seed<k>` (config-string item `seed=k`); `python -m trm_tf.analysis report` then groups the
runs that differ only by seed into one arm with n, mean, sd and a 95% interval. Without `--seeds` a run
keeps its config's seed (0) and the directory `<root>/<run_id>`.

Re-running the same command skips runs whose `run_summary.json` says "finished" and launches the
others again, which resume from their newest checkpoint. `<root>/sweep_summary.json` records, per run,
the status (finished | failed | incomplete | interrupted | not_run), duration and the final evaluation
from `eval_results.json`; it is rewritten after every run and merged with earlier sweeps' records.
Exit code: 0 when every selected run is finished, 1 otherwise, 2 for usage errors, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet gs:// access (and the children)

REPO = Path(__file__).resolve().parent
if str(REPO) not in sys.path:  # `configs` is a top-level package of the repository.
    sys.path.insert(0, str(REPO))

from configs import catalogue  # noqa: E402
from trm_tf.tools.sweep_io import is_url, join, now, write_text  # noqa: E402
from trm_tf.tools.sweep_io import launch as _launch  # noqa: E402

SUMMARY_NAME = "sweep_summary.json"
LOG_NAME = "launch.log"


def launch(cmd: list[str], log_path: str, prefix: str, out=None) -> int:
    """Runs `cmd` from the repository root (`sweep_io.launch`): output streamed to `out` and the log."""
    return _launch(cmd, log_path, prefix, out, cwd=REPO)


# ----------------------------------------------------------------------------------------------------
# Selection and commands.


def select(ids: list[str], pattern: str | None) -> list[catalogue.Run]:
    """Runs named by exact ids and/or a regex (substring) over every id, deduplicated, in order.

    Args:
      ids: exact ids of either scheme or run ids (case-insensitive).
      pattern: regular expression searched in every id ("exp02" matches exp02a_01 ... exp02b_05);
        an invalid regex is used as a plain substring.

    Returns:
      The selected runs, each once, in the order given (ids first, then pattern matches).

    Raises:
      KeyError: an unknown id.
    """
    runs = [catalogue.lookup(i) for i in ids]
    if pattern:
        matches = _matcher(pattern)
        runs += [run for i, run in catalogue.all_ids() if matches(i)]
    seen, out = set(), []
    for run in runs:
        if run.run_id not in seen:
            seen.add(run.run_id)
            out.append(run)
    return out


def list_lines(pattern: str | None = None) -> list[str]:
    """One line per id: id, run (workdir name), config[:variant], dataset."""
    matches = _matcher(pattern) if pattern else lambda _: True
    lines = []
    for i, run in catalogue.all_ids():
        if not matches(i):
            continue
        lines.append(f"{i:<30} {run.run_id:<32} {run.config_arg:<50} {run.dataset}")
    return lines


def _matcher(pattern: str):
    """A predicate: regex search, or plain substring when `pattern` is not a valid regex."""
    try:
        return re.compile(pattern).search
    except re.error:
        return lambda s: pattern in s


def command(
    run: catalogue.Run,
    workdir: str,
    launcher: list[str],
    *,
    tpu: str = "",
    data_dir: str = "",
    config_arg: str = "",
    extra: list[str] = (),
) -> list[str]:
    """The launch command of one run.

    Args:
      run: registry entry.
      workdir: the run's workdir.
      launcher: argv prefix, e.g. [sys.executable, "launch.py"].
      tpu: value of launch.py --tpu ("" leaves it out: CPU/GPU).
      data_dir: TFDS data_dir override ("" keeps the config's).
      config_arg: extra config-string items (e.g. "runlocal", "seed=1"), appended after the variant.
      extra: further launch.py flags, passed through last.

    Returns:
      argv list.
    """
    arg = ",".join(filter(None, [run.variant, config_arg]))
    cmd = [*launcher, f"--config={run.config}" + (f":{arg}" if arg else ""), f"--workdir={workdir}"]
    if tpu:
        cmd.append(f"--tpu={tpu}")
    if data_dir:
        cmd.append(f"--config.data.data_dir={data_dir}")
    return cmd + list(extra)


def _read_json(path: str):
    """`trm_tf.workdir.read_json` (None when the file is missing), imported here so that `--list` does not
    load TensorFlow."""
    from trm_tf.workdir import read_json  # noqa: PLC0415

    return read_json(path)


def run_status(workdir: str) -> str | None:
    """`status` of the run's run_summary.json (None when there is none)."""
    summary = _read_json(join(workdir, "run_summary.json"))
    return summary.get("status") if isinstance(summary, dict) else None


def final_metrics(workdir: str) -> dict:
    """The final evaluation of eval_results.json: the full eval with the largest step, else latest."""
    results = _read_json(join(workdir, "eval_results.json"))
    if not isinstance(results, dict):
        return {}
    full = [h for h in results.get("history", []) if isinstance(h, dict) and h.get("full")]
    if full:
        return max(full, key=lambda h: h.get("step", -1))
    return results.get("latest") or {}


# ----------------------------------------------------------------------------------------------------
# Running (launching one child and its log: `trm_tf/tools/sweep_io.py`).


def write_summary(root: str, records: list[dict]) -> dict:
    """Merges `records` into <root>/sweep_summary.json (by run id, catalogue order) and writes it."""
    path = join(root, SUMMARY_NAME)
    old = _read_json(path)
    by_id = {r["id"]: r for r in (old or {}).get("runs", []) if isinstance(r, dict) and "id" in r}
    by_id.update({r["id"]: r for r in records})
    order = {run.run_id: k for k, run in enumerate(catalogue.RUNS)}

    def key(r):
        return (order.get(r.get("run_id", r["id"]), len(order)), r.get("seed") or 0, r["id"])

    summary = {"root": root, "updated": now(), "runs": sorted(by_id.values(), key=key)}
    write_text(path, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return summary


def run_sweep(
    runs: list[catalogue.Run],
    root: str,
    launcher: list[str],
    *,
    tpu: str = "",
    data_dir: str = "",
    config_arg: str = "",
    extra: list[str] = (),
    dry_run: bool = False,
    continue_on_failure: bool = False,
    seeds: list[int] | None = None,
    out=None,
) -> int:
    """Runs `runs` (each under every seed of `seeds`, when given) one after another under `root`; see
    the module docstring. Returns the exit code."""
    out = out or sys.stdout
    if not is_url(root):
        root = os.path.abspath(root)
    trials = [(run, s) for run in runs for s in (seeds if seeds is not None else [None])]
    records, failed = [], False
    for k, (run, seed) in enumerate(trials):
        name = trial_name(run, seed)
        workdir = join(root, name)
        arg = ",".join(filter(None, [config_arg, None if seed is None else f"seed={seed}"]))
        cmd = command(
            run, workdir, launcher, tpu=tpu, data_dir=data_dir, config_arg=arg, extra=extra
        )
        record = _record(run, workdir, cmd, name, seed)
        status = run_status(workdir)
        if status == "finished":
            print(f"# skip {name}: {workdir}/run_summary.json says finished", file=out)
            if not dry_run:
                duration = (_read_json(join(workdir, "run_summary.json")) or {}).get("wall_time_s")
                records.append(_ended(record, "finished", None, None, duration, skipped=True))
            continue
        if dry_run:
            resume = f"  # resumes ({status})" if status else ""
            print(shlex.join(cmd) + resume, file=out)
            continue
        print(f"=== [{k + 1}/{len(trials)}] {name}: {shlex.join(cmd)}", file=out, flush=True)
        started, t0 = now(), time.monotonic()
        try:
            rc = launch(cmd, join(workdir, LOG_NAME), name, out)
        except KeyboardInterrupt:
            duration = round(time.monotonic() - t0, 3)
            write_summary(root, [*records, _ended(record, "interrupted", None, started, duration)])
            print(f"=== interrupted during {name}", file=out)
            return 130
        finished = rc == 0 and run_status(workdir) == "finished"
        status = "finished" if finished else ("failed" if rc != 0 else "incomplete")
        duration = round(time.monotonic() - t0, 3)
        records.append(_ended(record, status, rc, started, duration, skipped=False))
        write_summary(root, records)
        print(f"=== {name}: {status} (exit {rc})", file=out, flush=True)
        if status != "finished":
            failed = True
            if not continue_on_failure:
                _stop_after_failure(name, trials[k + 1 :], root, records, out)
                break
    if dry_run:
        return 0
    _final_summary(root, records, out)
    return 1 if failed else 0


def _final_summary(root: str, records: list[dict], out) -> None:
    """Writes the summary file once more and prints one line per run."""
    if records:
        write_summary(root, records)
    print(f"=== sweep summary: {join(root, SUMMARY_NAME)}", file=out)
    for r in records:
        print(f"  {r['id']:<32} {r['status']:<12} {r.get('duration_s')}", file=out)


def trial_name(run: catalogue.Run, seed: int | None) -> str:
    """The run directory's name (and summary id) of `run` under `seed`: `<run_id>-seed<k>`, or the run id
    when the sweep has no `--seeds`."""
    return run.run_id if seed is None else f"{run.run_id}-seed{seed}"


def _record(run: catalogue.Run, workdir: str, cmd: list[str], name: str, seed: int | None) -> dict:
    """The summary record of one run before it ends: what it is and how it is launched."""
    return {
        "id": name,
        "run_id": run.run_id,
        "seed": seed,
        "study_ids": list(run.ids),
        "config": run.config_arg,
        "dataset": run.dataset,
        "workdir": workdir,
        "log": join(workdir, LOG_NAME),
        "command": shlex.join(cmd),
    }


def _ended(record, status, returncode, started, duration_s, *, skipped=None) -> dict:
    """`record` with how the run ended and its final evaluation (`skipped` only when known)."""
    record.update(status=status)
    if skipped is not None:
        record.update(skipped=skipped)
    record.update(returncode=returncode)
    if started is not None:
        record.update(started=started)
    record.update(duration_s=duration_s, final=final_metrics(record["workdir"]))
    return record


def _stop_after_failure(name: str, rest, root: str, records: list[dict], out) -> None:
    """Records the runs after a failed one as not run, and says why the sweep stops."""
    for r, seed in rest:
        records.append(
            {
                "id": trial_name(r, seed),
                "run_id": r.run_id,
                "seed": seed,
                "config": r.config_arg,
                "workdir": join(root, trial_name(r, seed)),
                "status": "not_run",
            }
        )
    if rest:
        write_summary(root, records)
    print(
        f"=== stopping after the failure of {name} "
        f"({len(rest)} not run; --continue-on-failure goes on)",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python sweep.py", description=__doc__.split("\n\n")[0].strip()
    )
    p.add_argument("ids", nargs="*", help="ids of either scheme or run ids (see --list)")
    p.add_argument("--list", action="store_true", help="print every id, run, config and dataset")
    p.add_argument("--markdown", action="store_true", help="print the configs/README.md table")
    p.add_argument("--pattern", default=None, help="regex (or substring) over every id")
    p.add_argument("--workdir_root", default=None, help="each run goes to ROOT/<run_id>")
    p.add_argument("--dry-run", "--dry_run", action="store_true", help="print the commands only")
    p.add_argument("--continue-on-failure", "--continue_on_failure", action="store_true")
    p.add_argument(
        "--extra", default="", help='launch.py flags, e.g. "--config.train.total_steps=10"'
    )
    p.add_argument("--launcher", default=f"{shlex.quote(sys.executable)} launch.py")
    p.add_argument("--tpu", default="", help="launch.py --tpu value (e.g. local)")
    p.add_argument("--data_dir", default="", help="sets --config.data.data_dir for every run")
    p.add_argument("--config_arg", default="", help="config-string items, e.g. runlocal")
    p.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds: every run once per seed, into <root>/<run_id>-seed<k>",
    )
    a = p.parse_args(argv)
    if a.markdown:
        print(catalogue.markdown_table())
        return 0
    if a.list:
        print("\n".join(list_lines(a.pattern)))
        return 0
    if not a.ids and not a.pattern:
        p.error("name experiments (ids or --pattern; --pattern=. selects all), or use --list")
    if not a.workdir_root:
        p.error("--workdir_root is required to run")
    try:
        runs = select(a.ids, a.pattern)
    except KeyError as e:
        p.error(f"unknown id {e}; see --list")
    if not runs:
        p.error(f"--pattern={a.pattern!r} matches no id; see --list")
    seeds = parse_seeds(a.seeds, a.config_arg)
    if isinstance(seeds, str):
        p.error(seeds)
    return run_sweep(
        runs,
        a.workdir_root,
        shlex.split(a.launcher),
        tpu=a.tpu,
        data_dir=a.data_dir,
        config_arg=a.config_arg,
        extra=shlex.split(a.extra),
        dry_run=a.dry_run,
        continue_on_failure=a.continue_on_failure,
        seeds=seeds,
    )


def parse_seeds(text: str, config_arg: str) -> list[int] | None | str:
    """`--seeds` as a list of distinct non-negative ints (None when empty), or the usage error."""
    if not text.strip():
        return None
    if any(item.split("=")[0].strip() == "seed" for item in config_arg.split(",")):
        return "--seeds and a seed= item in --config_arg are exclusive"
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        return f"--seeds={text!r}: expected comma-separated integers, e.g. --seeds=0,1,2"
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        return f"--seeds={text!r}: expected distinct non-negative integers, e.g. --seeds=0,1,2"
    return seeds


if __name__ == "__main__":
    sys.exit(main())
