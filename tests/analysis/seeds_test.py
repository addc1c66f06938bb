"""Seeds as an axis (`trm_tf.analysis.seeds`): arms grouped by config-without-seed, t intervals that equal
scipy's, Welch differences, and the report's Seeds section and error-bar plot."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.testing import fake_runs as fake
from trm_tf.analysis import report, runs, seeds

# Final exact accuracy per (arm, seed): EMA on is clearly better than EMA off; the best eval adds 0.02.
FINAL = {True: [0.60, 0.64, 0.68], False: [0.30, 0.40, 0.35]}


def _seeded_study(root) -> str:
    for ema, values in FINAL.items():
        for seed, acc in enumerate(values):
            name = f"ema_{'on' if ema else 'off'}-seed{seed}"
            fake.make_fake_run(
                os.path.join(root, name),
                experiment_id="ema_on" if ema else "ema_off",
                overrides={"optim.ema": ema, "seed": seed},
                evals={100: {"exact_accuracy": acc + 0.02}, 200: {"exact_accuracy": acc}},
                full_eval_steps=(200,),
                summary={"status": "finished", "step": 200, "total_steps": 200},
            )
    return str(root)


def test_estimate_is_students_t_interval():
    e = seeds.estimate([1.0, 2.0, 3.0, np.nan])
    assert (e.n, e.mean, e.sd) == (3, 2.0, 1.0)
    lo, hi = stats.t.interval(0.95, 2, loc=2.0, scale=1.0 / np.sqrt(3))
    assert e.lo == pytest.approx(lo) and e.hi == pytest.approx(hi)
    assert e.half_width == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    one = seeds.estimate([0.5])
    assert one.n == 1 and np.isnan(one.lo) and one.text() == "0.50 (n=1)"
    assert seeds.estimate([]).n == 0


def test_welch_difference_matches_scipy():
    a, b = [0.30, 0.40, 0.35], [0.60, 0.64, 0.68, 0.70]
    d = seeds.welch_difference(a, b)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert d.mean == pytest.approx(np.mean(b) - np.mean(a))
    assert (d.lo, d.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    same = seeds.welch_difference([0.5, 0.5], [0.7, 0.7])
    assert (same.lo, same.hi) == (pytest.approx(0.2), pytest.approx(0.2))


def test_paired_difference_removes_the_seed_spread():
    a = {0: 10.0, 1: 40.0, 2: 70.0, 3: 55.0}  # seed 3 only in a: not paired
    b = {0: 12.0, 1: 43.0, 2: 72.5}
    d, method = seeds.difference(a, b)
    assert method == "paired by seed" and d.n == 3 and d.mean == pytest.approx(2.5)
    ci = stats.ttest_rel([12.0, 43.0, 72.5], [10.0, 40.0, 70.0]).confidence_interval(0.95)
    assert (d.lo, d.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.lo > 0  # separated by pairing ...
    w = seeds.welch_difference(list(a.values()), list(b.values()))
    assert w.lo < 0 < w.hi  # ... but not by Welch, which keeps the 10-70 spread between seeds
    # Fewer than 2 common seeds: Welch over all values.
    d, method = seeds.difference({0: 1.0, 1: 2.0}, {1: 3.0, 5: 4.0})
    assert method == "Welch" and d.mean == pytest.approx(2.0)


def test_baseline_arm():
    assert seeds.baseline_arm(["attention", "pilot_cpu_baseline", "x"]) == "pilot_cpu_baseline"
    assert seeds.baseline_arm(["b", "a"]) == "b"  # none or several named baseline: the first
    assert seeds.baseline_arm(["b", "a"], "a") == "a"
    with pytest.raises(ValueError, match="is not an arm; the arms are: b, a"):
        seeds.baseline_arm(["b", "a"], "c")


def test_other_pairs_compare_the_arms_that_are_not_the_baseline():
    """Besides arm − baseline, the report gives the differences between the other arms, paired by seed:
    here the deepest recursion against the shallowest is separated while neither is from the baseline."""
    finals = {
        "pilot_cpu_baseline": {0: 62.0, 1: 28.8, 2: 39.5},
        "pilot_cpu_tn_2_1": {0: 39.0, 1: 35.7, 2: 32.2},
        "pilot_cpu_tn_4_2": {0: 60.3, 1: 49.9, 2: 43.9},
    }
    table = pd.DataFrame({"arm": list(finals)})
    table.attrs["by_seed"] = {a: {"final": v} for a, v in finals.items()}
    ((a, b, d, method),) = seeds.other_pairs(table)
    assert (a, b, method) == ("pilot_cpu_tn_2_1", "pilot_cpu_tn_4_2", "paired by seed")
    ci = stats.ttest_rel([60.3, 49.9, 43.9], [39.0, 35.7, 32.2]).confidence_interval(0.95)
    assert d.mean == pytest.approx((21.3 + 14.2 + 11.7) / 3) and (d.lo, d.hi) == (
        pytest.approx(ci.low),
        pytest.approx(ci.high),
    )
    assert d.lo > 0
    assert all(
        not x.lo > 0 for _, x, _ in seeds.differences(table)
    )  # from the baseline: not separated
    # With another baseline the pairs change: the named baseline never appears in them.
    pairs = seeds.other_pairs(table, "pilot_cpu_tn_2_1")
    assert [(a, b) for a, b, _, _ in pairs] == [("pilot_cpu_baseline", "pilot_cpu_tn_4_2")]
    assert seeds.other_pairs(table.iloc[:2]) == []


def test_arms_group_runs_that_differ_only_by_seed(tmp_path):
    df = runs.load_runs(_seeded_study(tmp_path / "runs") + "/*")
    assert seeds.has_seed_groups(df)
    table = seeds.arm_table(df, "exact_accuracy")
    assert list(table["arm"]) == ["ema_off", "ema_on"]  # load_runs sorts by experiment id
    assert list(table["n"]) == [3, 3] and list(table["seeds"]) == [[0, 1, 2], [0, 1, 2]]
    on = table.set_index("arm").loc["ema_on"]
    want = seeds.estimate(np.array(FINAL[True]) * 100)
    assert on["final"].mean == pytest.approx(64.0) and on["final"].lo == pytest.approx(want.lo)
    assert on["best"].mean == pytest.approx(66.0)  # the step-100 eval was the best
    ((arm, d, method),) = seeds.differences(table)
    assert arm == "ema_on" and d.mean == pytest.approx(64.0 - 35.0) and d.lo > 0
    # Both arms ran seeds 0, 1, 2: the difference is paired by seed.
    assert method == "paired by seed"
    want = seeds.estimate(np.subtract(FINAL[True], FINAL[False]) * 100)
    assert d.n == 3 and d.lo == pytest.approx(want.lo) and d.hi == pytest.approx(want.hi)
    # One run per config: no seed groups.
    single = df[df["seed"] == 0]
    assert not seeds.has_seed_groups(single)


def test_report_has_the_seeds_section_and_the_error_bar_plot(tmp_path):
    df = runs.load_runs(_seeded_study(tmp_path / "runs") + "/*")
    path = report.write_report(df, str(tmp_path / "out"), "ema")
    text = open(path).read()
    assert "## Seeds: mean ± 95% interval per arm" in text
    row = next(x for x in text.splitlines() if x.startswith("| ema_on |"))
    assert "| 0,1,2 | 3 | 64.00 ± " in row and "(n=3)" in row
    assert "ema_on − ema_off: 29.00 ± " in text and "interval excludes 0" in text
    assert "![Arms over seeds (95% t intervals)](seeds_exact_accuracy.png)" in text
    png = tmp_path / "out" / "seeds_exact_accuracy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _two_arms_three_seeds(root) -> str:
    """Arms T=2 / T=3 at batch 32 / 64 with 1k / 2k parameters (so the size, T x n, batch and cost plots
    apply), three seeds each, with
    per-step accuracy, a training loss and a throughput; every value differs by seed."""
    for arm, (t, batch) in enumerate(((2, 32), (3, 64))):
        for seed in range(3):
            acc = 0.3 + 0.3 * arm + 0.05 * seed
            fake.make_fake_run(
                os.path.join(root, f"t{t}-seed{seed}"),
                experiment_id=f"t{t}",
                overrides={"model.H_cycles": t, "train.global_batch_size": batch, "seed": seed},
                train={
                    s: {"loss": 2.0 / s + seed, "examples_per_s": 50.0 + 10 * arm + seed}
                    for s in (50, 100, 200)
                },
                evals={
                    s: {
                        "exact_accuracy": acc * s / 200,
                        "exact_accuracy/step_1": acc * s / 400,
                        "exact_accuracy/step_2": acc * s / 200,
                    }
                    for s in (100, 200)
                },
                full_eval_steps=(200,),
                summary={
                    "status": "finished",
                    "step": 200,
                    "total_steps": 200,
                    "num_params": 1000 * (arm + 1),
                    "flops_per_example_train": 1e6 * t,
                    "flops_per_example_eval": 2e6 * t,
                    "wall_time_s": 100.0 + 20 * arm + seed,
                },
            )
    return str(root)


def test_every_plot_draws_the_seed_intervals(tmp_path, monkeypatch):
    """With seeds, every plot of the report shows each arm's 95% t interval: error bars on points and
    per-step lines, a band around mean curves, "±" in the heatmap's cells. The figures are caught at
    `save_png` and their artists inspected."""
    from matplotlib.collections import PolyCollection
    from matplotlib.container import ErrorbarContainer

    from trm_tf.analysis import plot_common, plot_curves, plot_scaling, plots

    figures = {}

    def catch(fig, out_dir, name):
        figures[name] = fig
        return name

    for module in (plot_common, plot_scaling, plot_curves, seeds):  # plot_cost calls plot_common's
        monkeypatch.setattr(module, "save_png", catch, raising=False)
    df = runs.load_runs(_two_arms_three_seeds(tmp_path / "runs") + "/*")
    assert seeds.has_seed_groups(df) and len(df) == 6
    made = [name for _, name in plots.plots_for_group(df, str(tmp_path / "out"))]
    made.append(seeds.plot_arms(df, str(tmp_path / "out")))
    assert set(made) == {
        "accuracy_vs_params",
        "tn_heatmap",
        "throughput_vs_batch",
        "accuracy_vs_supervision_step",
        "accuracy_vs_compute",
        "accuracy_vs_test_compute",
        "eval_curves",
        "seeds_exact_accuracy",
    }
    half = seeds.half_width([30.0, 35.0, 40.0])  # arm T=2's final accuracy in percent
    for name in made:
        fig = figures[name]
        bars = [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]
        bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        if name == "tn_heatmap":
            assert any(f"35.0 ± {half:.1f}" in t and "n=3" in t for t in texts), texts
        elif name == "eval_curves":
            assert len(bands) == 2  # one band per arm
            labels = [line.get_label() for line in fig.axes[0].get_lines()]
            assert sum("mean of n=3" in x for x in labels) == 2, labels  # per arm, not per seed
        else:
            assert bars, name
            heights = [
                seg[1][1] - seg[0][1]
                for c in bars
                for lc in c.lines[2]
                for seg in lc.get_segments()
            ]
            assert max(heights) > 0, name
    sup = [
        c
        for c in figures["accuracy_vs_supervision_step"].axes[0].containers
        if isinstance(c, ErrorbarContainer)
    ]
    segs = [seg for c in sup for lc in c.lines[2] for seg in lc.get_segments()]
    assert len(segs) == 4  # 2 arms x 2 steps
    assert any(abs((s[1][1] - s[0][1]) / 2 - half) < 1e-6 for s in segs)  # step 2 of arm T=2


def test_paths_and_runtime_settings_do_not_split_an_arm(tmp_path):
    """Seeds of one arm run from another data directory, with another log cadence or another runtime
    setting are still one arm; a hyperparameter (optim.ema) still splits."""
    for name, overrides in (
        ("a-seed0", {"seed": 0}),
        (
            "a-seed1",
            {"seed": 1, "data.data_dir": "gs://elsewhere/tfds", "runtime.jit_compile": "false"},
        ),
        ("a-seed2", {"seed": 2, "train.log_every_steps": 7}),
        ("b-seed0", {"seed": 0, "optim.ema": False}),
    ):
        fake.make_fake_run(
            str(tmp_path / name),
            experiment_id="arm",
            overrides=overrides,
            evals={10: {"exact_accuracy": 0.5}},
            summary={"status": "finished", "step": 10, "total_steps": 10},
        )
    df = runs.load_runs(str(tmp_path / "*"))
    assert sorted(len(idx) for _, idx in seeds.arm_groups(df)) == [1, 3]
