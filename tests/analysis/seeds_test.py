"""Seeds as an axis (`trm_tf.analysis.seeds`): arms grouped by config-without-seed, t intervals that equal
scipy's, Welch differences, and the report's Seeds section and error-bar plot."""

import os

import numpy as np
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
    ((arm, d),) = seeds.differences(table)
    assert arm == "ema_on" and d.mean == pytest.approx(64.0 - 35.0) and d.lo > 0
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
