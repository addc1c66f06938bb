"""Analysis of trainer work directories: run tables, scaling-law fits, plots and markdown reports.

Typical use::

    from trm_tf import analysis
    df = analysis.load_runs(["gs://bucket/runs/exp01*"])
    analysis.write_report(df, "out/exp01", "Exp 1: model size")

or the CLI `python -m trm_tf.analysis compare|plot|report WORKDIR_OR_GLOB... --out=DIR`.

Submodules: `runs` (loading; `scalars` reads the logged curves, `run_config` the configs), `fits`
(power law), `plots` (PNGs; drawn in `plot_scaling`, `plot_curves`, `plot_cost`), `report` (markdown),
`paper` (reference numbers). Names below are imported lazily so that the CLI's --help does not pay for importing
TensorFlow.
"""

import importlib

_EXPORTS = {
    "PowerLawFit": "fits",
    "fit_power_law": "fits",
    "saturating_power_law": "fits",
    "markdown_table": "report",
    "summary_table": "report",
    "write_report": "report",
    "find_workdirs": "runs",
    "load_run": "runs",
    "load_runs": "runs",
    "load_scalars": "runs",
    "varying_fields": "runs",
    "plots_for_group": "plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"trm_tf.analysis.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'trm_tf.analysis' has no attribute {name!r}")
