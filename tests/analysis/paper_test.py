"""What the analysis compares with the paper (trm_tf/analysis/paper.py): the paper's ARC figure is the
reference's pooled pass@2, so ARC runs are compared through `ARC/pooled/pass@2`, never through one
checkpoint's `ARC/pass@2`; Sudoku and Maze through exact accuracy."""

import pandas as pd
import pytest

from trm_tf.analysis import paper, plot_common


@pytest.mark.parametrize(
    "names, metric",
    [
        (["arc_agi", "arc_agi"], "ARC/pooled/pass@2"),
        (["arc_agi_2"], "ARC/pooled/pass@2"),
        (["sudoku_extreme"], "exact_accuracy"),
        (["maze_hard", "sudoku_extreme"], "exact_accuracy"),
        (["arc_agi", "sudoku_extreme"], "exact_accuracy"),  # mixed: no single paper metric
        (["arc_agi", "unknown_task"], "exact_accuracy"),
    ],
)
def test_headline_metric(names, metric):
    assert paper.headline_metric(names) == metric


def test_reference_only_for_the_metric_the_paper_measured():
    assert (
        paper.reference_for("arc_agi", False, "ARC/pooled/pass@2")
        == paper.PAPER[("arc1", "attention")]
    )
    assert paper.reference_for("arc_agi", False, "ARC/pass@2") is None
    assert paper.reference_for("arc_agi_2", False, "ARC/pooled/pass@2")[0] == 7.8
    assert paper.reference_for("sudoku_extreme", True, "exact_accuracy")[0] == 87.4
    assert paper.reference_for("sudoku_extreme", True, "ARC/pooled/pass@2") is None


def test_plots_draw_the_paper_line_against_the_pooled_metric_only():
    df = pd.DataFrame({"data.name": ["arc_agi"], "model.mlp_t": [False]})
    drawn = {}
    for metric in ("ARC/pooled/pass@2", "ARC/pass@2"):
        fig, (ax,) = plot_common.new_figure()
        plot_common.reference_lines(ax, df, metric)
        drawn[metric] = [line.get_ydata()[0] for line in ax.get_lines()]
    assert drawn == {"ARC/pooled/pass@2": [44.6], "ARC/pass@2": []}
