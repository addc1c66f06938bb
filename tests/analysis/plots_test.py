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
        plot_cost.plot_accuracy_vs_test_compute(df, out),
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


def test_test_compute_points_are_k_steps_and_the_front_is_the_cheapest_way(tmp_path, monkeypatch):
    """One point per arm and test-time step k at k x (flops_per_example_eval / eval steps), the adaptive
    point at its mean steps; the front keeps only the points no cheaper point beats."""
    import pandas as pd

    figures = {}
    from trm_tf.analysis import plot_common

    monkeypatch.setattr(  # plot_cost calls plot_common's
        plot_common, "save_png", lambda fig, out, name: figures.setdefault(name, fig) and name
    )
    df = pd.DataFrame(
        {
            "experiment_id": ["small", "big"],
            "status": ["finished", "finished"],
            "act.halt_max_steps": [4, 4],
            "eval.halt_max_steps": [float("nan"), 2],  # big evaluates 2 steps: its FLOPs are of 2
            "flops_per_example_eval": [4e6, 2 * 3e6],
            "final_eval.exact_accuracy/step_1": [0.10, 0.30],
            "final_eval.exact_accuracy/step_2": [0.40, 0.50],
            "final_eval.exact_accuracy/step_3": [0.45, float("nan")],
            "final_eval.exact_accuracy/step_4": [0.46, float("nan")],
            "final_eval.adaptive_exact_accuracy": [0.44, 0.50],
            "final_eval.adaptive_steps": [2.5, 2.0],
        }
    )
    assert list(plot_cost.test_flops_per_step(df)) == [1e6, 3e6]
    plot_cost.plot_accuracy_vs_test_compute(df, str(tmp_path))
    ax = figures["accuracy_vs_test_compute"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    small, big = lines["small"], lines["big"]
    assert list(small.get_xdata()) == [1e6, 2e6, 3e6, 4e6]
    assert list(small.get_ydata()) == pytest.approx([10, 40, 45, 46])
    assert list(big.get_xdata()) == [3e6, 6e6] and list(big.get_ydata()) == pytest.approx([30, 50])
    front = lines["Pareto front"]
    # small k=1 (1e6, 10), small k=2 (2e6, 40), small adaptive (2.5e6, 44), small k=3 (3e6, 45) - big k=1
    # at 3e6 gives 30 < 45 -, small k=4 (4e6, 46), big k=2 (6e6, 50); big adaptive (6e6, 50) ties it.
    assert list(front.get_xdata()) == [1e6, 2e6, 2.5e6, 3e6, 4e6, 6e6]
    assert list(front.get_ydata()) == pytest.approx([10, 40, 44, 45, 46, 50])
    with pytest.raises(ValueError, match="flops_per_example_eval"):
        plot_cost.plot_accuracy_vs_test_compute(
            df.drop(columns=["flops_per_example_eval"]), str(tmp_path)
        )
