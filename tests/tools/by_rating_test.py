"""The by-rating split: bands, the alignment of test records with the build's ratings, the exactness
rule, the per-arm table, the stored result and the CLI's one-line errors."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.tiny_runs import make_run, tiny_config
from tfds_builders import builder_utils
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx
from trm_tf.analysis import seeds
from trm_tf.tools import average_checkpoints, by_rating, restore

# A small search-needing build with easy twins, so both bands hold puzzles.
MIX = sx.SudokuConfig(
    name="by_rating_test",
    description="Test-only: search-needing puzzles, half of them easy twins.",
    source="generated",
    seed=5,
    num_train=2,
    num_test=10,
    num_aug=0,
    require="search",
    max_blanks=24,
    easy_fraction=0.5,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("by_rating_data"))
    sx.Builder(config=MIX, data_dir=data_dir).download_and_prepare()
    meta = builder_utils.read_metadata(data_dir, f"sudoku_extreme/{MIX.name}")
    ratings = np.asarray(meta["ratings"]["test"])
    assert (ratings == 0).any() and (ratings >= 1).any(), ratings  # both bands are exercised
    return data_dir, ratings


def _run(root, name, data_dir, seed, best_step, logged, experiment_id=None, lr=None):
    cfg = tiny_config(data_dir)
    cfg.data.name, cfg.data.config, cfg.seed = "sudoku_extreme", MIX.name, seed
    if experiment_id:
        cfg.experiment_id = experiment_id
    if lr:
        cfg.optim.lr = lr
    run = os.path.join(root, name)
    saved = make_run(run, cfg, steps=(1, 2))
    tf.io.gfile.makedirs(os.path.join(run, "best"))
    for suffix in (".index", ".data-00000-of-00001"):
        tf.io.gfile.copy(
            saved[best_step][0] + suffix, os.path.join(run, "best", f"ckpt-{best_step}" + suffix)
        )
    with open(os.path.join(run, "run_summary.json"), "w") as f:
        json.dump({"status": "finished", "step": 2, "best": {"step": best_step, "value": 0.0}}, f)
    with open(os.path.join(run, "eval_results.json"), "w") as f:
        json.dump({"history": [{"step": s, "exact_accuracy": v} for s, v in logged.items()]}, f)
    return run


def test_bands_parse_and_label():
    assert by_rating.parse_bands("0,1,2-3,4-") == [(0, 0), (1, 1), (2, 3), (4, None)]
    assert [by_rating.band_label(b) for b in by_rating.parse_bands("0, 2-3 ,4-")] == [
        "rating 0",
        "rating 2-3",
        "rating >= 4",
    ]
    for bad in ("a", "3-1", "1--2", ""):
        with pytest.raises(by_rating.RatingError, match="bad rating band"):
            by_rating.parse_bands(bad)
    result = {
        "per_rating": {
            "0": {"n": 4, "solved_per_step": [1, 3]},
            "2": {"n": 2, "solved_per_step": [0, 1]},
        }
    }
    assert by_rating.band_accuracy(result, (0, 0)) == (4, 0.75)
    assert by_rating.band_accuracy(result, (1, None)) == (2, 0.5)
    n, acc = by_rating.band_accuracy(result, (5, None))
    assert n == 0 and math.isnan(acc)


class _Oracle:
    """A stand-in model whose final prediction is the solution for the puzzles in `solve` (by row of
    `inputs`) and the solution with one cell wrong for the others; in the first step every puzzle is wrong."""

    puzzle_emb = None

    def __init__(self, inputs, labels, solve):
        self.inputs = tf.constant(inputs)
        wrong = labels.copy()
        wrong[:, 0] = np.where(wrong[:, 0] == 2, 3, 2)
        self.final = tf.constant(
            np.where(np.isin(np.arange(len(labels)), solve)[:, None], labels, wrong)
        )
        self.wrong = tf.constant(wrong)

    def initial_carry(self, n):
        return tf.zeros([n], tf.int32)

    def inner(self, carry, x, rows, training):
        row = tf.argmax(
            tf.cast(tf.reduce_all(x[:, None, :] == self.inputs[None], -1), tf.int32), -1
        )
        final, wrong = tf.gather(self.final, row), tf.gather(self.wrong, row)
        preds = tf.where(carry[:, None] > 0, final, wrong)
        logits = tf.one_hot(preds, 11)
        q = tf.zeros([tf.shape(x)[0]])
        return {"carry": carry + 1, "logits": logits, "q_halt": q, "q_continue": q}


def test_records_align_with_the_builds_ratings_and_exactness_is_every_cell(
    built, tmp_path, monkeypatch
):
    data_dir, ratings = built
    run = _run(str(tmp_path), "r-seed0", data_dir, 0, best_step=1, logged={1: 0.3, 2: 0.0})
    data = by_rating.test_split(restore.read_run_config(run))
    assert sorted(data["group"]) == list(range(MIX.num_test))
    # Solve exactly the puzzles of groups 0 and 3 (found by group, not by record order).
    solve = [int(np.flatnonzero(data["group"] == g)[0]) for g in (0, 3)]
    oracle = _Oracle(data["inputs"], data["labels"], solve)
    solved = by_rating.exact_per_step(oracle, data["inputs"], data["labels"], 2)
    assert solved.shape == (MIX.num_test, 2) and not solved[:, 0].any()
    assert sorted(np.flatnonzero(solved[:, 1])) == sorted(solve)

    monkeypatch.setattr(restore, "load_model", lambda config, ckpt, use_ema: oracle)
    with pytest.raises(by_rating.RatingError, match="no averaged_best/ckpt; write it with"):
        by_rating.split_run(run, "averaged_best")
    monkeypatch.setattr(by_rating, "BATCH", 4)  # several batches
    result = by_rating.split_run(run, "best")
    assert result["step"] == 1 and result["num_examples"] == MIX.num_test
    assert result["exact_accuracy"] == pytest.approx(0.2) and result["logged_exact_accuracy"] == 0.3
    want = {}
    for g, r in enumerate(ratings):
        w = want.setdefault(str(int(r)), {"n": 0, "solved_per_step": [0, 0]})
        w["n"] += 1
        w["solved_per_step"][1] += int(g in (0, 3))
    assert result["per_rating"] == want


def test_cli_stores_the_split_and_reports_arms_with_intervals(built, tmp_path, monkeypatch, capsys):
    data_dir, ratings = built
    root = str(tmp_path / "runs")
    runs_ = {
        s: _run(root, f"arm-seed{s}", data_dir, s, best_step=2, logged={2: v})
        for s, v in ((0, 0.1), (1, 0.2))
    }
    config = restore.read_run_config(runs_[0])
    data = by_rating.test_split(config)
    groups_solved = {0: (0,), 1: (0, 1)}  # seed -> groups the best checkpoint solves
    calls = []

    def fake_load(config, ckpt, use_ema):
        calls.append((config.seed, ckpt, use_ema))
        averaged = (
            "averaged_best" in ckpt
        )  # the average solves one group fewer (seed 1) / more (seed 0)
        solved = {0: (0, 2), 1: (0,)}[config.seed] if averaged else groups_solved[config.seed]
        rows = [int(np.flatnonzero(data["group"] == g)[0]) for g in solved]
        return _Oracle(data["inputs"], data["labels"], rows)

    for run in runs_.values():  # E4.4's input: average_checkpoints --around=best
        cfg = restore.read_run_config(run)
        average_checkpoints.average(
            cfg, average_checkpoints.around_best(run, 2), os.path.join(run, "averaged_best", "ckpt")
        )
    monkeypatch.setattr(restore, "load_model", fake_load)
    out = tmp_path / "report" / "by_rating.md"
    argv = [os.path.join(root, "*"), "--which=best,averaged_best", f"--out={out}"]
    assert by_rating.main(argv) == 0
    assert sorted(calls) == [
        (0, os.path.join(runs_[0], "averaged_best", "ckpt"), False),
        (0, os.path.join(runs_[0], "best"), True),
        (1, os.path.join(runs_[1], "averaged_best", "ckpt"), False),
        (1, os.path.join(runs_[1], "best"), True),
    ]
    text = out.read_text()
    assert text in capsys.readouterr().out
    easy_n, hard_n = int((ratings == 0).sum()), int((ratings >= 1).sum())
    # Per run: seed 1 solves groups 0 and 1, i.e. 20% overall; the logged 20% is printed next to it;
    # its average is not what the run logged, so no logged figure.
    assert "| arm-seed1 | best | 2 |" in text and "| 20.0 | 20.0 |" in text
    assert "| arm-seed1 | averaged_best | 2 |" in text and "| 10.0 | – |" in text

    def band_values(solved_by_seed):
        cells = []
        for band, n in (((0, 0), easy_n), ((1, None), hard_n)):
            in_band = [band[0] <= r and (band[1] is None or r <= band[1]) for r in ratings]
            cells.append([100 * sum(in_band[g] for g in solved_by_seed[s]) / n for s in (0, 1)])
        cells.append([100 * len(solved_by_seed[s]) / len(ratings) for s in (0, 1)])
        return cells

    best, avg = band_values(groups_solved), band_values({0: (0, 2), 1: (0,)})
    # Per arm and checkpoint: each band's mean and interval over the two seeds, then overall.
    for which, vals in (("best", best), ("averaged_best", avg)):
        cells = [seeds.estimate(v).text(1) for v in vals]
        row = f"| {which} | 0,1 | {easy_n} / {hard_n} | " + " | ".join(cells) + " |"
        assert row in text, (row, text)
    # Checkpoints of the same runs: paired by seed.
    diff = [seeds.estimate(np.subtract(b, a)).text(1) for a, b in zip(best, avg)]
    assert ": averaged_best − best (paired by seed) | " + " | ".join(diff) + " |" in text
    assert text.count(" − ") == 1  # one arm: no difference between arms
    stored = json.loads(open(os.path.join(runs_[1], by_rating.RESULT_FILE)).read())
    assert stored["best"]["step"] == 2 and stored["best"]["exact_accuracy"] == pytest.approx(0.2)
    assert stored["averaged_best"]["logged_exact_accuracy"] is None
    # A second call reads the stored splits: no model is loaded.
    calls.clear()
    assert (
        by_rating.main([os.path.join(root, "*"), "--which=averaged_best,best"]) == 0 and calls == []
    )
    # One-line errors: nothing matches; a build without ratings.
    assert by_rating.main([str(tmp_path / "none*")]) == 1
    assert "no run directories match" in capsys.readouterr().err
    cfg = restore.read_run_config(runs_[0])
    cfg.data.config = "no_such_config"
    with pytest.raises(by_rating.RatingError, match="is not built"):
        by_rating.test_ratings(cfg)


def test_arms_are_compared_with_the_baseline_arm_paired_by_seed(built, tmp_path, monkeypatch):
    data_dir, ratings = built
    root = str(tmp_path / "runs")
    solved = {("pilot_baseline", 0): (0,), ("pilot_baseline", 1): (0, 1), ("pilot_b", 0): (0, 1, 2)}
    solved[("pilot_b", 1)] = (0, 1, 2, 3)
    solved[("pilot_c", 0)], solved[("pilot_c", 1)] = (0, 1, 2, 3, 4), (0, 1, 2, 3, 4, 5)
    for (arm, seed), groups in solved.items():
        lr = {"pilot_b": 2e-3, "pilot_c": 3e-3}.get(arm)
        _run(root, f"{arm}-seed{seed}", data_dir, seed, 2, {2: len(groups) / 10}, arm, lr)
    data = by_rating.test_split(restore.read_run_config(f"{root}/pilot_b-seed0"))

    def fake_load(config, ckpt, use_ema):
        rows = [
            int(np.flatnonzero(data["group"] == g)[0])
            for g in solved[config.experiment_id, config.seed]
        ]
        return _Oracle(data["inputs"], data["labels"], rows)

    monkeypatch.setattr(restore, "load_model", fake_load)
    out = tmp_path / "by_rating.md"
    assert by_rating.main([f"{root}/*", f"--out={out}"]) == 0
    text = out.read_text()
    # pilot_b solves two puzzles more than the baseline under each seed: +20 points overall, sd 0.
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| pilot_b − pilot_baseline (best, paired by seed)")
    )
    assert row.endswith("| 20.0 ± 0.0 [20.0, 20.0] (n=2) |"), row
    # The arms other than the baseline are compared with each other too: pilot_c is two puzzles ahead.
    rows = [x for x in text.splitlines() if " − " in x and "(best, paired by seed)" in x]
    assert [x.split(" (")[0] for x in rows] == [
        "| pilot_b − pilot_baseline",
        "| pilot_c − pilot_baseline",
        "| pilot_c − pilot_b",
    ]
    assert rows[2].endswith("| 20.0 ± 0.0 [20.0, 20.0] (n=2) |"), rows[2]
