"""Tests of trm_tf.analysis on fabricated run directories with known values.

The fixture writes a group of six finished-or-running runs (sizes, T/n, EMA, mixer, batch and data vary)
plus partial runs (config only, truncated event file, metrics.jsonl only), then checks the table values,
the varying fields, the power-law fit, every plot, the report and the CLI.
"""

import glob
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.testing import fake_runs as fake
from trm_tf.analysis import fits, plots, report, runs
from trm_tf.analysis.__main__ import main as cli_main

# Known law for the size group: acc = A − B·params^(−C).
A, B, C = 0.9, 120.0, 0.4
PARAMS = [1e6, 2e6, 4e6, 8e6, 16e6, 32e6]
N_RUNS = len(PARAMS)
HIDDEN = [128, 192, 256, 384, 512, 768]
H_CYC = [2, 2, 3, 3, 4, 4]
L_CYC = [2, 6, 2, 6, 2, 6]
EMA = [True, False, True, False, True, True]
MLP_T = [True, True, True, False, False, True]
BATCH = [256, 256, 512, 512, 1024, 1024]
DATA = [
    "sub100_aug10",
    "sub250_aug100",
    "sub500_aug300",
    "sub1000_aug1000",
    "sub2000_aug1000",
    "sub5000_aug2000",
]
FPE = 2.5e10  # flops_per_example_train
NSUP = 4
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def final_acc(i):
    return A - B * PARAMS[i] ** (-C)


def subset_acc(i):
    # Run 1's periodic (subset) eval beats its final full eval: best must differ from final.
    return final_acc(i) + (0.05 if i == 1 else -0.1)


def make_group(root):
    paths = []
    for i in range(N_RUNS):
        evals = {
            100: {
                "exact_accuracy": subset_acc(i),
                "lm_loss": 1.0,
                **{
                    f"exact_accuracy/step_{k}": subset_acc(i) * k / NSUP for k in range(1, NSUP + 1)
                },
            },
            200: {
                "exact_accuracy": final_acc(i),
                "lm_loss": 0.5 + 0.01 * i,
                **{f"exact_accuracy/step_{k}": final_acc(i) * k / NSUP for k in range(1, NSUP + 1)},
            },
        }
        if i == 2:  # A later subset eval after the last full one must not become "final".
            evals[300] = {"exact_accuracy": 0.01, "lm_loss": 3.0}
        train = {
            s: {
                "loss": 2.0 / s,
                "exact_accuracy": 0.5 + i / 100 + s / 1000,
                "examples_per_s": 1000.0 * BATCH[i] / 256 + s,
            }
            for s in (50, 100, 150, 200)
        }
        steps = max(evals)
        paths.append(
            fake.make_fake_run(
                os.path.join(root, f"exp_{chr(ord('a') + i)}"),
                experiment_id=f"exp_{chr(ord('a') + i)}",
                overrides={
                    "model.hidden_size": HIDDEN[i],
                    "model.H_cycles": H_CYC[i],
                    "model.L_cycles": L_CYC[i],
                    "act.halt_max_steps": NSUP,
                    "optim.ema": EMA[i],
                    "model.mlp_t": MLP_T[i],
                    "model.pos_encodings": "none" if MLP_T[i] else "rope",
                    "train.global_batch_size": BATCH[i],
                    "data.config": DATA[i],
                },
                train=train,
                evals=evals,
                full_eval_steps=(200,),
                summary={
                    "status": "running" if i == 5 else "finished",
                    "step": steps,
                    "total_steps": 300,
                    "wall_time_s": 3600.0 * (i + 1),
                    "examples_per_s": 1000.0 * BATCH[i] / 256,
                    "num_params": PARAMS[i],
                    "flops_per_example_train": FPE,
                    "flops_per_example_eval": 16 * FPE,
                    "num_replicas": 1,
                    "device_kind": "cpu",
                },
            )
        )
    return paths


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    group = str(root / "group")
    make_group(group)
    partial = str(root / "partial")
    # Just started: only config.json.
    fake.make_fake_run(os.path.join(partial, "p_config_only"), experiment_id="p_config_only")
    # Events cut mid-record (preempted writer), no summary, no eval_results.json.
    w = fake.make_fake_run(
        os.path.join(partial, "p_truncated"),
        experiment_id="p_truncated",
        train={10: {"loss": 3.0}, 20: {"loss": 2.0}},
        evals={20: {"exact_accuracy": 0.25}, 40: {"exact_accuracy": 0.5}},
        write_jsonl=False,
        write_eval_results=False,
    )
    ev = glob.glob(os.path.join(w, "eval", "events.out.tfevents.*"))[0]
    with open(ev, "rb") as f:
        data = f.read()
    with open(ev, "wb") as f:
        f.write(data[:-5])
    # metrics.jsonl only (no event files), with a last line cut mid-write.
    w = fake.make_fake_run(
        os.path.join(partial, "p_jsonl"),
        experiment_id="p_jsonl",
        train={5: {"loss": 1.5}, 10: {"loss": 1.25}},
        evals={10: {"exact_accuracy": 0.125}},
        write_events=False,
        write_eval_results=False,
    )
    with open(os.path.join(w, "metrics.jsonl"), "a") as f:
        f.write('{"split": "train", "step": 15, "lo')
    df = runs.load_runs([os.path.join(group, "*")])
    return {"root": str(root), "group": group, "partial": partial, "df": df}


# ------------------------------------------------------------------------------------------------
# runs.py


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
    curve = runs.load_scalars(os.path.join(study["group"], "exp_c"), "eval", "exact_accuracy")
    assert list(curve["step"]) == [100, 200, 300]
    np.testing.assert_allclose(curve["value"], [subset_acc(2), final_acc(2), 0.01], rtol=1e-6)
    assert runs.load_scalars(os.path.join(study["group"], "exp_c"), "eval", "no_such_tag").empty
    j = runs.load_scalars(os.path.join(study["partial"], "p_jsonl"), "train", "loss")
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


# ------------------------------------------------------------------------------------------------
# fits.py


def test_fit_recovers_known_law_noiseless():
    x = np.array(PARAMS)
    fit = fits.fit_power_law(x, A - B * x ** (-C))
    assert fit.a == pytest.approx(A, rel=1e-6)
    assert fit.b == pytest.approx(B, rel=1e-4)
    assert fit.c == pytest.approx(C, rel=1e-5)
    assert fit.a_se < 1e-6 and fit.rmse < 1e-9
    # Same law in percent and in small-x units: the fit is unit-free.
    x2 = np.array([10, 25, 50, 100, 250, 500, 1000.0])
    fit2 = fits.fit_power_law(x2, 85.0 - 40.0 * x2 ** (-0.7))
    assert fit2.params == pytest.approx((85.0, 40.0, 0.7), rel=1e-4)


def test_fit_lightly_noisy_within_tolerance_and_band_covers_truth():
    rng = np.random.default_rng(0)
    x = np.repeat(np.array([100, 250, 500, 1000, 2000, 5000.0]), 2)
    truth = 0.87 - 1.5 * x ** (-0.5)
    y = truth + rng.normal(0, 0.002, x.shape)
    fit = fits.fit_power_law(x, y)
    assert fit.a == pytest.approx(0.87, abs=0.01)
    assert fit.c == pytest.approx(0.5, abs=0.1)
    assert abs(fit.a - 0.87) < 4 * fit.a_se + 1e-3
    grid = np.geomspace(100, 5000, 20)
    lo, hi = fit.band(grid)
    true_grid = 0.87 - 1.5 * grid ** (-0.5)
    assert np.all(lo <= hi) and np.mean((lo <= true_grid) & (true_grid <= hi)) >= 0.9
    blo, bhi = fit.bootstrap_band(x, y, grid, n_boot=50, seed=1)
    assert np.all(blo <= fit.predict(grid) + 1e-3) and np.all(bhi >= fit.predict(grid) - 1e-3)
    assert fit.x_for(fit.a - 0.01) > 0


def test_fit_few_points_errors():
    with pytest.raises(ValueError, match="at least 3"):
        fits.fit_power_law([1, 2], [0.1, 0.2], with_uncertainty=False)
    with pytest.raises(ValueError, match="at least 4"):
        fits.fit_power_law([1, 2, 3], [0.1, 0.2, 0.25])
    fit = fits.fit_power_law([1, 2, 4], [0.1, 0.2, 0.25], with_uncertainty=False)
    assert np.isnan(fit.a_se) and np.allclose(fit.predict([1, 2, 4]), [0.1, 0.2, 0.25], atol=1e-6)
    assert np.all(np.isnan(fit.band([1, 2])[0]))


# ------------------------------------------------------------------------------------------------
# plots.py and report.py


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
        plots.plot_accuracy_vs_params(df, out),
        plots.plot_accuracy_vs_train_size(df, out),
        plots.plot_accuracy_vs_augmentations(df, out, which="best"),
        plots.plot_tn_heatmap(df, out),
        plots.plot_ema_curves(df, out),
        plots.plot_mlp_vs_attention_curves(df, out),
        plots.plot_accuracy_vs_supervision_step(df, out),
        plots.plot_accuracy_vs_compute(df, out),
        plots.plot_throughput_vs_batch(df, out),
        plots.plot_eval_curves(df, out),
    ]
    assert len(set(paths)) == len(paths)
    for p in paths:
        _assert_png(p)


def test_plots_need_their_data(study, tmp_path):
    df = study["df"].drop(columns=["num_params"])
    with pytest.raises(ValueError, match="num_params"):
        plots.plot_accuracy_vs_params(df, str(tmp_path))
    with pytest.raises(ValueError, match="step_"):
        plots.plot_accuracy_vs_supervision_step(df, str(tmp_path), metric="accuracy")


def test_scaling_fit_and_pareto(study):
    fit = plots.scaling_fit(study["df"], "num_params")
    # Fitted in percent on the final evals, which follow the law exactly.
    assert fit.params == pytest.approx((100 * A, 100 * B, C), rel=1e-4)
    mask = plots.pareto_front([1, 2, 3, 4, 5], [0.5, 0.4, 0.7, 0.7, 0.9])
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


# ------------------------------------------------------------------------------------------------
# CLI


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


def test_fit_flags_parameters_on_bounds():
    x = np.array([10, 30, 100, 300, 1000, 3000.0])
    y = 20 + 15 * np.log10(x)  # No saturation in sight, and heading past 100 %.
    fit = fits.fit_power_law(x, y, a_max=100.0)
    assert fit.a <= 100.0 and fit.at_bound


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
    today = runs.flatten_config(json.loads(module.get_config(arg or None).to_json_best_effort()))
    assert sorted(row["_config_columns"]) == sorted(today)
    assert {k: row[k] for k in today} == today
    # The moved fields really moved, with their values.
    assert row["act.halt_max_steps"] == 16 and "model.halt_max_steps" not in row
    assert row["train.total_steps"] is None and row["eval.halt_max_steps"] is None
    assert row["act.q_continue_target"] is (run == "baseline_hrm")
    if run == "contrib02_adaptive_halting":
        assert row["act.halt_exploration_final"] == 0.05


def test_upgrade_config_leaves_todays_layout_alone():
    from configs import base

    flat = runs.flatten_config(json.loads(base.get_config().to_json_best_effort()))
    assert runs.upgrade_config(flat) == flat
