"""Tests of the trm_tf.analysis CLI, and the whole path on a non-local filesystem.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import os

import pandas as pd
import pytest
import tensorflow as tf

from tests.testing import fake_runs as fake
from tests.testing.analysis_study import (
    N_RUNS,
)
from trm_tf.analysis import report, runs
from trm_tf.analysis.__main__ import main as cli_main


def test_cli_compare_plot_and_errors(study, tmp_path, capsys):
    glob_arg = os.path.join(study["group"], "exp_*")
    out = str(tmp_path / "cmp")
    assert cli_main(["compare", glob_arg, f"--out={out}", "--format=csv"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(os.path.join(out, "compare.csv"))
    assert list(table["run"]) == [f"exp_{c}" for c in "abcdef"]
    assert "exp_f" in printed and "final exact_accuracy (%)" in printed
    assert len(pd.read_csv(os.path.join(out, "runs.csv"))) == N_RUNS

    # One run: only the plots that need no varying field apply (supervision steps, eval curves).
    assert cli_main(["plot", os.path.join(study["group"], "exp_a"), f"--out={tmp_path / 'p'}"]) == 0
    listed = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in listed] == [
        "accuracy_vs_supervision_step.png",
        "eval_curves.png",
    ]
    assert all(os.path.getsize(p) > 10_000 for p in listed)

    rep = tmp_path / "rep"
    assert cli_main(["report", glob_arg, f"--out={rep}", "--metric=lm_loss", "--no-plots"]) == 0
    with open(rep / "report.md") as f:
        text = f.read()
    assert "final lm_loss" in text and "| exp_f |" in text and "![" not in text

    assert cli_main(["compare", os.path.join(study["root"], "nothing*")]) == 2
    assert "no run matches" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["plot", glob_arg])  # plot needs --out
    assert e.value.code == 2


def test_non_local_filesystem_end_to_end():
    # TF's in-memory ram:// filesystem goes through the same tf.io.gfile code paths as gs://.
    root = f"ram://analysis_test_{os.getpid()}"
    for i, acc in enumerate([0.5, 0.25]):
        fake.make_fake_run(
            f"{root}/runs/r{i}",
            experiment_id=f"r{i}",
            overrides={"model.hidden_size": 64 * (i + 1)},
            train={10: {"loss": 1.0 + i}},
            evals={10: {"exact_accuracy": acc}},
            full_eval_steps=(10,),
            summary={"status": "finished", "step": 10},
        )
    df = runs.load_runs([f"{root}/runs/*"])
    assert list(df["workdir"]) == [f"{root}/runs/r0", f"{root}/runs/r1"]
    assert list(df["final_eval.exact_accuracy"]) == [0.5, 0.25]
    assert list(df["final_train.loss"]) == [1.0, 2.0]
    assert runs.varying_fields(df) == ["model.hidden_size", "model.puzzle_emb_ndim"]  # tied
    path = report.write_report(df, f"{root}/out", "ram", make_plots=False)
    with tf.io.gfile.GFile(path) as f:
        assert "| r1 | finished |" in f.read()
