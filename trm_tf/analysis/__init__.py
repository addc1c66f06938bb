"""Analysis of trainer work directories: run tables, scaling-law fits, plots and markdown reports.

Typical use::

    from trm_tf.analysis import report, runs
    df = runs.load_runs(["gs://bucket/runs/exp01*"])
    report.write_report(df, "out/exp01", "Exp 1: model size")

or the CLI `python -m trm_tf.analysis compare|plot|report WORKDIR_OR_GLOB... --out=DIR`.

Submodules: `runs` (loading; `scalars` reads the logged curves, `run_config` the configs), `fits`
(power law), `plots` (PNGs; drawn in `plot_scaling`, `plot_curves`, `plot_cost`), `report` (markdown),
`paper` (reference numbers). This package imports none of them, so that the CLI's --help does not pay
for importing TensorFlow.
"""
