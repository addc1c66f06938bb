"""Command line: `python -m trm_tf.analysis compare|plot|report WORKDIR_OR_GLOB... --out=DIR`.

compare  prints the runs table (markdown or CSV) and, with --out, writes it plus the full table runs.csv;
plot     writes every plot that applies to the runs into --out and prints their paths;
report   writes report.md (table, varying fields, plots, fitted laws, paper numbers) into --out.

Quote globs so that the shell does not expand them (gs:// globs must be expanded by TensorFlow):
  python -m trm_tf.analysis report 'gs://bucket/runs/exp01*' --out=reports/exp01
Exit status 2 when no run matches.
"""

from __future__ import annotations

import argparse
import logging
import os
import posixpath
import sys

# Quiet TensorFlow C++ logs (set before TensorFlow is first imported, which happens in main()).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the CLI (exposed for tests and --help)."""
    p = argparse.ArgumentParser(
        prog="python -m trm_tf.analysis",
        description=(
            "Compare, plot and report trm-tf training runs. Each WORKDIR_OR_GLOB is a run directory "
            "written by launch.py --workdir (local or gs://), a glob of them, or a folder whose "
            "subfolders are runs."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("command", choices=("compare", "plot", "report"), help="what to produce")
    p.add_argument("paths", nargs="+", metavar="WORKDIR_OR_GLOB", help="run directories or globs")
    p.add_argument(
        "--out",
        default=None,
        help="output folder, local or gs:// (required by plot and report; optional for compare)",
    )
    p.add_argument(
        "--format",
        choices=("md", "csv"),
        default="md",
        help="table format of compare (stdout and DIR/compare.<format>); default md",
    )
    p.add_argument(
        "--metric",
        default="auto",
        help="eval tag used for the table, plots and fits (e.g. accuracy, ARC/pass@2); default auto: "
        "the metric of the paper's figure, ARC/pooled/pass@2 when every run is an ARC run, else "
        "exact_accuracy",
    )
    p.add_argument(
        "--which",
        choices=("final", "best"),
        default="final",
        help="evaluation plotted and fitted: the final (last full) one or the best one; default final",
    )
    p.add_argument(
        "--group", default=None, help="report title (default: common experiment-id prefix)"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="report: the arm the others are compared with (default: the one arm whose label "
        "contains 'baseline', else the first)",
    )
    p.add_argument(
        "--no-plots", action="store_true", help="report: table, fields and fits only (faster)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also print per-run warnings")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 usage error or no matching run)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Per-run notes land in the table's notes column; keep the terminal to the essentials.
        logging.getLogger("trm_tf.analysis.runs").setLevel(logging.ERROR)
    if args.command in ("plot", "report") and not args.out:
        parser.error(f"{args.command} needs --out=DIR")

    # Imported after argument parsing so that --help and usage errors do not pay for TensorFlow.
    import tensorflow as tf

    from trm_tf.analysis import plots, report, runs

    df = runs.load_runs(args.paths)
    if df.empty:
        print(
            "error: no run matches " + " ".join(repr(p) for p in args.paths) + " (a run directory "
            "holds config.json, run_summary.json, eval_results.json, metrics.jsonl, train/ or eval/)",
            file=sys.stderr,
        )
        return 2
    if args.metric == "auto":
        from trm_tf.analysis import paper

        args.metric = paper.headline_metric(df.get("data.name", []))
    print(f"{len(df)} run(s) loaded; metric {args.metric}", file=sys.stderr)

    if args.command == "compare":
        table = report.summary_table(df, args.metric)
        text = report.markdown_table(table) if args.format == "md" else table.to_csv(index=False)
        print(text.rstrip("\n"))
        if args.out:
            tf.io.gfile.makedirs(args.out)
            with tf.io.gfile.GFile(posixpath.join(args.out, f"compare.{args.format}"), "w") as f:
                f.write(text)
            with tf.io.gfile.GFile(posixpath.join(args.out, "runs.csv"), "w") as f:
                f.write(df.to_csv(index=False))
            print(f"wrote {posixpath.join(args.out, f'compare.{args.format}')}", file=sys.stderr)
    elif args.command == "plot":
        made = plots.plots_for_group(df, args.out, args.metric, args.which)
        if not made:
            print("error: no plot applies to these runs (no eval data?)", file=sys.stderr)
            return 1
        for _, path in made:
            print(path)
    else:
        if args.baseline:
            from trm_tf.analysis import seeds

            try:
                seeds.baseline_arm([arm for arm, _ in seeds.arm_groups(df)], args.baseline)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        path = report.write_report(
            df,
            args.out,
            args.group,
            args.metric,
            args.which,
            make_plots=not args.no_plots,
            baseline=args.baseline,
        )
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
