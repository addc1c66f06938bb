"""The markdown report of trm_tf.analysis (`report`): the runs table, varying fields, fitted laws, paper
numbers, image links, and the summary table's values.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import os

import pandas as pd

from tests.testing.analysis_study import N_RUNS, assert_png, final_acc, subset_acc
from trm_tf.analysis import report


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
        assert_png(os.path.join(tmp_path, link))
    csv = pd.read_csv(os.path.join(tmp_path, "runs.csv"))
    assert len(csv) == N_RUNS


def test_summary_table_values(study):
    t = report.summary_table(study["df"])
    assert list(t["run"]) == [f"exp_{c}" for c in "abcdef"]
    assert t.loc[1, "best exact_accuracy (%) @step"] == f"{100 * subset_acc(1):.2f} @100"
    assert t.loc[0, "final exact_accuracy (%)"] == f"{100 * final_acc(0):.2f}"
    assert t.loc[2, "step"] == "300/300" and t.loc[0, "params"] == "1M"


def test_the_runs_table_names_each_runs_best_checkpoint(tmp_path):
    """run_summary.json's `best` (the checkpoint the run kept in best/) is a column of the runs table,
    "–" for a run that kept none; without any, the column is left out."""
    from tests.testing import fake_runs as fake
    from trm_tf.analysis import runs

    evals = {100: {"exact_accuracy": 0.7}, 200: {"exact_accuracy": 0.6}}
    best = {"metric": "exact_accuracy", "value": 0.7, "step": 100, "mode": "max"}
    for name, summary in (("a", {"best": best}), ("b", {})):
        fake.make_fake_run(
            str(tmp_path / name),
            experiment_id=name,
            evals=evals,
            summary={"status": "finished", "step": 200, "total_steps": 200, **summary},
        )
    df = runs.load_runs(str(tmp_path / "*"))
    table = report.summary_table(df)
    assert list(table["best checkpoint (metric value @step)"]) == ["exact_accuracy 0.7 @100", "–"]
    assert "best checkpoint (metric value @step)" not in report.summary_table(
        df[df["run_name"] == "b"]
    )
