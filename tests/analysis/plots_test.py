"""The plots of trm_tf.analysis (`plot_scaling`, `plot_curves`, `plot_cost`, listed by `plots`): every PNG,
the data each needs, the scaling fit and the Pareto front.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import pytest

from tests.testing.analysis_study import (
    A,
    B,
    C,
    assert_png,
)
from trm_tf.analysis import plot_cost, plot_curves, plot_scaling


def test_every_plot_writes_a_png(study, tmp_path):
    df = study["df"]
    out = str(tmp_path)
    paths = [
        plot_scaling.plot_accuracy_vs_params(df, out),
        plot_scaling.plot_accuracy_vs_train_size(df, out),
        plot_scaling.plot_accuracy_vs_augmentations(df, out, which="best"),
        plot_scaling.plot_tn_heatmap(df, out),
        plot_curves.plot_ema_curves(df, out),
        plot_curves.plot_mlp_vs_attention_curves(df, out),
        plot_scaling.plot_accuracy_vs_supervision_step(df, out),
        plot_cost.plot_accuracy_vs_compute(df, out),
        plot_cost.plot_throughput_vs_batch(df, out),
        plot_curves.plot_eval_curves(df, out),
    ]
    assert len(set(paths)) == len(paths)
    for p in paths:
        assert_png(p)


def test_plots_need_their_data(study, tmp_path):
    df = study["df"].drop(columns=["num_params"])
    with pytest.raises(ValueError, match="num_params"):
        plot_scaling.plot_accuracy_vs_params(df, str(tmp_path))
    with pytest.raises(ValueError, match="step_"):
        plot_scaling.plot_accuracy_vs_supervision_step(df, str(tmp_path), metric="accuracy")


def test_scaling_fit_and_pareto(study):
    fit = plot_scaling.scaling_fit(study["df"], "num_params")
    # Fitted in percent on the final evals, which follow the law exactly.
    assert fit.params == pytest.approx((100 * A, 100 * B, C), rel=1e-4)
    mask = plot_cost.pareto_front([1, 2, 3, 4, 5], [0.5, 0.4, 0.7, 0.7, 0.9])
    assert list(mask) == [True, False, True, False, True]
