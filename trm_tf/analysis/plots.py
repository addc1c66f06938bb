"""One PNG per study question, from a `load_runs` table (and logged curves where needed).

Every plot function takes the table, writes `<out_dir>/<name>.png` (local or gs://) and returns that path.
They raise ValueError when the table holds nothing to plot for that question (e.g. no run has
`num_params`); `plots_for_group` picks the plots that apply to a set of runs and skips the rest with a
warning.

The plots live in `plot_scaling` (power-law scaling, T × n heatmap, supervision steps), `plot_curves`
(curves over steps) and `plot_cost` (compute and throughput), their shared helpers in `plot_common`; this
module holds the table of them that `plots_for_group` (and the report) walks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd

from trm_tf.analysis import runs
from trm_tf.analysis.plot_cost import (
    plot_accuracy_vs_compute,
    plot_accuracy_vs_test_compute,
    plot_throughput_vs_batch,
)
from trm_tf.analysis.plot_curves import (
    plot_ema_curves,
    plot_eval_curves,
    plot_mlp_vs_attention_curves,
)
from trm_tf.analysis.plot_scaling import (
    plot_accuracy_vs_augmentations,
    plot_accuracy_vs_params,
    plot_accuracy_vs_supervision_step,
    plot_accuracy_vs_train_size,
    plot_tn_heatmap,
)

log = logging.getLogger(__name__)


def _varies(df: pd.DataFrame, col: str) -> bool:
    return col in df and df[col].dropna().map(runs._hashable).nunique() > 1


def _any_varies(*cols: str) -> Callable[[pd.DataFrame], bool]:
    return lambda df: any(_varies(df, c) for c in cols)


# (title, plot function, whether it takes `which`, when it applies), in report order.
_GROUP_PLOTS = (
    ("Accuracy vs parameters", plot_accuracy_vs_params, True, _any_varies("num_params")),
    (
        "Accuracy vs training-set size",
        plot_accuracy_vs_train_size,
        True,
        _any_varies("train_puzzles"),
    ),
    ("Accuracy vs augmentations", plot_accuracy_vs_augmentations, True, _any_varies("num_aug")),
    (
        "Accuracy over T × n",
        plot_tn_heatmap,
        True,
        _any_varies("model.H_cycles", "model.L_cycles"),
    ),
    (
        "EMA on/off eval curves",
        plot_ema_curves,
        False,
        _any_varies("optim.ema", "optim.ema_rate"),
    ),
    ("MLP-T vs attention", plot_mlp_vs_attention_curves, False, _any_varies("model.mlp_t")),
    (
        "Throughput vs batch size",
        plot_throughput_vs_batch,
        True,
        _any_varies("train.global_batch_size"),
    ),
    (
        "Accuracy vs test-time supervision steps",
        plot_accuracy_vs_supervision_step,
        False,
        lambda df: True,
    ),
    ("Accuracy vs training cost", plot_accuracy_vs_compute, True, lambda df: len(df) > 1),
    ("Accuracy vs test compute", plot_accuracy_vs_test_compute, False, lambda df: len(df) > 1),
    ("Eval curves of every run", plot_eval_curves, False, lambda df: True),
)


def plots_for_group(
    df: pd.DataFrame, out_dir: str, metric: str = "exact_accuracy", which: str = "final"
) -> list[tuple[str, str]]:
    """Writes every plot that applies to this set of runs.

    A plot applies when its axis varies across the runs (e.g. `num_params` for the size plot, H/L cycles
    for the heatmap, `optim.ema`/`ema_rate` for the EMA curves); the eval curves, the supervision-step plot
    and the compute plot are drawn whenever their data exist.

    Returns:
      [(title, path)] of the PNGs written, in report order.
    """
    done = []
    for title, fn, takes_which, applies in _GROUP_PLOTS:
        if not applies(df):
            continue
        try:
            done.append(
                (title, fn(df, out_dir, metric, which) if takes_which else fn(df, out_dir, metric))
            )
        except ValueError as e:
            log.warning("skipped plot %r: %s", title, e)
    return done
