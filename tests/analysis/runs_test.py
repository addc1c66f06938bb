"""Tests of trm_tf.analysis.runs: the table of runs, varying fields, curves, partial runs, old config layouts.

The runs are fabricated with known values (tests/testing/analysis_study.py).
"""

import json
import os

import numpy as np
import pytest

from tests.testing import fake_runs as fake
from tests.testing.analysis_study import (
    BATCH,
    FPE,
    H_CYC,
    HIDDEN,
    L_CYC,
    N_RUNS,
    PARAMS,
    REPO,
    final_acc,
    subset_acc,
)
from trm_tf.analysis import run_config, runs, scalars


def test_table_has_one_row_per_run_with_exact_values(study):
    df = study["df"]
    assert list(df["experiment_id"]) == [f"exp_{c}" for c in "abcdef"]
    np.testing.assert_allclose(
        df["final_eval.exact_accuracy"], [final_acc(i) for i in range(N_RUNS)], rtol=1e-6
    )
    best = [max(final_acc(i), subset_acc(i)) for i in range(N_RUNS)]
    np.testing.assert_allclose(df["best_eval.exact_accuracy"], best, rtol=1e-6)
    assert list(df["best_eval_step.exact_accuracy"]) == [200, 100, 200, 200, 200, 200]
    # Run c has a later subset eval (step 300): the final eval is still the full one at 200.
    assert list(df["final_eval_step"]) == [200] * N_RUNS
    assert df["final_eval_full"].all()
    # lm_loss is a loss: best = min.
    assert df.loc[2, "best_eval.lm_loss"] == pytest.approx(0.52)
    assert df.loc[2, "best_eval_step.lm_loss"] == 200
    np.testing.assert_allclose(df["final_train.loss"], [2.0 / 200] * N_RUNS, rtol=1e-6)
    np.testing.assert_allclose(
        df["final_train.exact_accuracy"], [0.7 + i / 100 for i in range(N_RUNS)], rtol=1e-6
    )
    np.testing.assert_allclose(
        df["final_eval.exact_accuracy/step_2"], [final_acc(i) / 2 for i in range(N_RUNS)], rtol=1e-6
    )
    assert list(df["num_params"]) == PARAMS
    assert list(df["status"]) == ["finished"] * 5 + ["running"]
    assert list(df["step"]) == [200, 200, 300, 200, 200, 200]
    np.testing.assert_allclose(df["train_flops"], FPE * np.array(BATCH) * df["step"])
    assert list(df["model.hidden_size"]) == HIDDEN
    assert list(df["train_puzzles"]) == [100, 250, 500, 1000, 2000, 5000]
    assert list(df["num_aug"]) == [10, 100, 300, 1000, 1000, 2000]
    assert list(df["T_x_n"]) == [h * n for h, n in zip(H_CYC, L_CYC)]
    assert list(df["effective_depth"]) == [h * (n + 1) * 2 for h, n in zip(H_CYC, L_CYC)]
    assert (df["notes"] == "").all()


def test_varying_fields(study):
    df = study["df"]
    expected = {
        "model.hidden_size",
        "model.H_cycles",
        "model.L_cycles",
        "model.mlp_t",
        "model.pos_encodings",
        "optim.ema",
        "train.global_batch_size",
        "data.config",
        # Tied in configs/base.py: they follow hidden_size and the train batch.
        "model.puzzle_emb_ndim",
        "eval.global_batch_size",
    }
    assert set(runs.varying_fields(df)) == expected
    sub = df[df["model.H_cycles"] == 2]
    assert set(runs.varying_fields(sub)) == {
        "model.hidden_size",
        "model.puzzle_emb_ndim",
        "model.L_cycles",
        "optim.ema",
        "data.config",
    }
    assert runs.varying_fields(df.iloc[:1]) == []


def test_load_scalars_events_and_jsonl_fallback(study):
    curve = scalars.load_scalars(os.path.join(study["group"], "exp_c"), "eval", "exact_accuracy")
    assert list(curve["step"]) == [100, 200, 300]
    np.testing.assert_allclose(curve["value"], [subset_acc(2), final_acc(2), 0.01], rtol=1e-6)
    assert scalars.load_scalars(os.path.join(study["group"], "exp_c"), "eval", "no_such_tag").empty
    j = scalars.load_scalars(os.path.join(study["partial"], "p_jsonl"), "train", "loss")
    assert list(j["step"]) == [5, 10] and list(j["value"]) == [1.5, 1.25]


def test_partial_runs_degrade_to_nan_and_notes(study):
    df = runs.load_runs([study["partial"]])  # A parent folder: its run subfolders are found.
    df = df.set_index("experiment_id")
    assert set(df.index) == {"p_config_only", "p_truncated", "p_jsonl"}
    r = df.loc["p_config_only"]
    assert r["status"] == "unknown" and np.isnan(r["step"]) and np.isnan(r["final_eval_step"])
    assert "no evaluation yet" in r["notes"] and "missing run_summary.json" in r["notes"]
    r = df.loc["p_truncated"]
    # The cut record is the last eval value; the one before it survives.
    assert r["final_eval.exact_accuracy"] == pytest.approx(0.25)
    assert r["final_train.loss"] == pytest.approx(2.0)
    assert "truncated" in r["notes"]
    r = df.loc["p_jsonl"]
    assert r["final_train.loss"] == pytest.approx(1.25) and r["step"] == 10
    assert r["final_eval.exact_accuracy"] == pytest.approx(0.125)
    assert "bad line" in r["notes"]


def test_find_workdirs_globs_and_empty(study):
    found = runs.find_workdirs(
        [os.path.join(study["group"], "exp_[ab]"), os.path.join(study["group"], "exp_a")]
    )
    assert [os.path.basename(p) for p in found] == ["exp_a", "exp_b"]
    assert runs.load_runs([os.path.join(study["root"], "nothing*")]).empty


def test_event_only_tags_join_eval_results(tmp_path):
    # eval_results.json without the per-step accuracies: they come from the eval event files.
    w = fake.make_fake_run(
        str(tmp_path / "r"),
        evals={10: {"exact_accuracy": 0.5, "exact_accuracy/step_1": 0.25}},
        full_eval_steps=(10,),
        write_jsonl=False,
    )
    path = os.path.join(w, "eval_results.json")
    with open(path) as f:
        res = json.load(f)
    for entry in [res["latest"], *res["history"]]:
        entry.pop("exact_accuracy/step_1")
    with open(path, "w") as f:
        json.dump(res, f)
    row = runs.load_run(w)
    assert (
        row["final_eval.exact_accuracy"] == 0.5 and row["final_eval.exact_accuracy/step_1"] == 0.25
    )
    assert row["final_eval_full"] is True and row["final_eval_num_examples"] == 1000


@pytest.mark.parametrize(
    "run, config_arg",
    [
        ("contrib02_adaptive_halting", "configs/contrib02_adaptive_halting.py"),
        ("baseline_hrm", "configs/baselines.py:hrm"),
    ],
)
def test_config_json_of_the_old_layout_tabulates_as_today(run, config_arg, tmp_path):
    """A config.json written before the `act` section (committed fixture) loads into the same columns
    and values as today's config of the same run."""
    import importlib.util

    fixture = os.path.join(REPO, "tests", "fixtures", "config_v1", run, "config.json")
    with open(fixture) as f:
        old = json.load(f)
    assert old["model"]["halt_max_steps"] == 16 and "act" not in old  # really the old layout
    workdir = tmp_path / run
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(old))
    row = runs.load_run(str(workdir))

    path, _, arg = config_arg.partition(":")
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    today = runs.table_columns(
        run_config.flatten_config(json.loads(module.get_config(arg or None).to_json_best_effort()))
    )
    assert sorted(row["_config_columns"]) == sorted(today)
    assert {k: row[k] for k in today} == today
    # The moved fields really moved, with their values.
    assert row["act.halt_max_steps"] == 16 and "model.halt_max_steps" not in row
    assert row["train.total_steps"] is None and row["eval.halt_max_steps"] is None
    assert row["act.q_continue_target"] is (run == "baseline_hrm")
    if run == "contrib02_adaptive_halting":
        assert row["act.halt_exploration_final"] == 0.05


def test_upgrade_config_leaves_todays_layout_alone():
    from configs import args

    flat = run_config.flatten_config(json.loads(args.build(None).to_json_best_effort()))
    assert run_config.upgrade_config(flat) == flat
