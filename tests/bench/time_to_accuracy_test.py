"""bench/time_to_accuracy.py: the NumPy export for the reference equals the TFDS rows, the two recipes
agree, the reference's lr schedule, and a clean skip when torch or the checkout is missing."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.testing.tiny_datasets import TINY_SUDOKU, build_tiny_sudoku

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")
sys.path.insert(0, BENCH)
import time_to_accuracy as tta  # noqa: E402
import tta_reference_driver as driver  # noqa: E402

NAME = f"sudoku_extreme/{TINY_SUDOKU.name}"


def test_reference_layout_of_multi_example_puzzles():
    arrays = {
        "inputs": np.arange(6)[:, None] * np.ones((1, 3), np.int32),
        "labels": np.arange(6)[:, None] + np.zeros((1, 3), np.int32),
        "puzzle_identifier": np.array([4, 4, 7, 9, 9, 9], np.int32),
        "puzzle_index": np.array([0, 0, 1, 2, 2, 2], np.int32),
        "group": np.array([0, 0, 0, 1, 1, 1], np.int32),
    }
    out = tta.reference_layout(arrays)
    np.testing.assert_array_equal(out["puzzle_indices"], [0, 2, 3, 6])
    np.testing.assert_array_equal(out["group_indices"], [0, 2, 3])
    np.testing.assert_array_equal(out["puzzle_identifiers"], [4, 7, 9])
    np.testing.assert_array_equal(out["inputs"][:, 0], np.arange(6))


def test_export_matches_tfds_rows(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    out = tta.export_for_reference(data_dir, str(tmp_path / "export"), NAME)
    per_group = TINY_SUDOKU.num_aug + 1
    for split, n_groups, per in (
        ("train", TINY_SUDOKU.num_train, per_group),
        ("test", TINY_SUDOKU.num_test, 1),
    ):
        rows = {
            int(r["puzzle_index"]): r
            for r in tfds.as_numpy(tfds.builder(NAME, data_dir=data_dir).as_dataset(split=split))
        }
        got = {
            k: np.load(os.path.join(out, split, f"all__{k}.npy"))
            for k in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
        }
        n = n_groups * per
        assert len(rows) == n and got["inputs"].shape == (n, 81)
        np.testing.assert_array_equal(
            got["inputs"], np.stack([rows[i]["inputs"] for i in range(n)])
        )
        np.testing.assert_array_equal(
            got["labels"], np.stack([rows[i]["labels"] for i in range(n)])
        )
        np.testing.assert_array_equal(got["puzzle_indices"], np.arange(n + 1))  # one example each
        np.testing.assert_array_equal(got["group_indices"], np.arange(0, n + 1, per))
        assert not got["puzzle_identifiers"].any()
        with open(os.path.join(out, split, "dataset.json")) as f:
            meta = json.load(f)
        assert (meta["total_groups"], meta["total_puzzles"], meta["seq_len"]) == (n_groups, n, 81)
        assert meta["ignore_label_id"] == 0 and meta["vocab_size"] == 11


def test_reference_recipe_is_the_quickstart():
    c = tta.our_config(tta.our_overrides("/tmp/x", 300, 100))
    assert (c.train.total_steps, c.train.eval_every_steps, c.data.data_dir) == (300, 100, "/tmp/x")
    spec = type("Spec", (), {"seq_len": 81, "vocab_size": 11, "num_puzzle_identifiers": 1})()
    r = tta.reference_recipe(c, spec)
    m = r["model"]
    assert (m["hidden_size"], m["H_cycles"], m["L_cycles"], m["halt_max_steps"]) == (64, 2, 2, 4)
    assert m["mlp_t"] and m["pos_encodings"] == "none" and m["puzzle_emb_ndim"] == 64
    assert (r["global_batch_size"], r["lr"], r["lr_warmup_steps"], r["ema_rate"]) == (
        64,
        1e-3,
        100,
        0.99,
    )
    assert (r["weight_decay"], r["puzzle_emb_lr"], r["puzzle_emb_weight_decay"]) == (0.1, 1e-3, 0.1)
    assert r["loss_type"] == "stablemax_cross_entropy" and m["no_ACT_continue"]
    table = tta.recipe_table(c, r)
    lines = table.splitlines()[1:]  # each row: ours-name ours-value ref-name ref-value
    assert len(lines) == 25
    for line in lines:
        parts = line.split()
        if parts[0] != "act.loss_type":  # "stablemax" vs the reference's function name
            assert parts[-1] == parts[-3], line


def test_reference_lr_schedule():
    assert driver.lr_at(1, 1e-3, 100, 800, 1.0) == pytest.approx(1e-5)
    assert driver.lr_at(50, 1e-3, 100, 800, 1.0) == pytest.approx(5e-4)
    assert driver.lr_at(100, 1e-3, 100, 800, 1.0) == pytest.approx(1e-3)
    assert driver.lr_at(700, 1e-3, 100, 800, 1.0) == pytest.approx(1e-3)
    assert driver.lr_at(450, 1e-3, 100, 800, 0.0) == pytest.approx(5e-4)  # cosine half way
    assert driver.lr_at(800, 1e-3, 100, 800, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_skips_without_torch_or_checkout(tmp_path, capsys):
    tta.main(["--side=reference", f"--reference={tmp_path}", "--torch_python=python"])
    assert "checkout" in json.loads(capsys.readouterr().out)["skipped"]
    trm = tmp_path / "models" / "recursive_reasoning" / "trm.py"
    trm.parent.mkdir(parents=True)
    trm.write_text("")
    tta.main(["--side=both", f"--reference={tmp_path}", f"--torch_python={tmp_path / 'nope'}"])
    assert "cannot import torch" in json.loads(capsys.readouterr().out)["skipped"]
