"""Tests of trm_tf.analysis plots and report: every PNG, the scaling fit, Pareto front and markdown report.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import os

import pandas as pd
import pytest

from tests.testing.analysis_study import (
    N_RUNS,
    A,
    B,
    C,
    final_acc,
    subset_acc,
)
from trm_tf.analysis import plot_cost, plot_curves, plot_scaling, report


def _assert_png(path):
    assert os.path.basename(path).endswith(".png")
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000  # A blank figure is ~3 KB; a drawn one is far bigger.


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
        _assert_png(p)


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


def test_report_contains_table_fits_and_image_links(study, tmp_path):
    path = report.write_report(study["df"], str(tmp_path), "Exp test")
    with open(path) as f:
        text = f.read()
    assert text.startswith("# Exp test")
    assert "| run | status | step |" in text
    for c in "abcdef":
        assert f"| exp_{c} |" in text
    assert "- `model.hidden_size`: 128, 192, 256, 384, 512, 768" in text
    assert "acc = 90" in text  # The size law, a = 90 %.
    assert "87.4" in text  # Paper reference.
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert "accuracy_vs_params.png" in links and "tn_heatmap.png" in links and len(links) >= 8
    for link in links:
        _assert_png(os.path.join(tmp_path, link))
    csv = pd.read_csv(os.path.join(tmp_path, "runs.csv"))
    assert len(csv) == N_RUNS


def test_summary_table_values(study):
    t = report.summary_table(study["df"])
    assert list(t["run"]) == [f"exp_{c}" for c in "abcdef"]
    assert t.loc[1, "best exact_accuracy (%) @step"] == f"{100 * subset_acc(1):.2f} @100"
    assert t.loc[0, "final exact_accuracy (%)"] == f"{100 * final_acc(0):.2f}"
    assert t.loc[2, "step"] == "300/300" and t.loc[0, "params"] == "1M"
