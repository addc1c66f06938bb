"""The solve CLI: puzzle parsing errors, per-step output, the --dump file, loading a run directory."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import build_tiny_sudoku
from tests.test_train import REPO, small_config
from trm_tf import solve, train

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"


def test_parse_puzzle_and_errors(tmp_path):
    t = solve.parse_puzzle(PUZZLE)
    assert t.shape == (81,) and t[0] == 6 and t[2] == 1  # '5' -> 6, '.' -> blank 1
    np.testing.assert_array_equal(solve.parse_puzzle(PUZZLE.replace(".", "0")), t)
    with pytest.raises(solve.PuzzleFormatError, match="81 characters"):
        solve.parse_puzzle(PUZZLE[:-1])
    f = tmp_path / "p.txt"
    f.write_text(PUZZLE + "\n\n" + PUZZLE[:40] + "x" * 41 + "\n")
    with pytest.raises(solve.PuzzleFormatError, match=r"p.txt:3: invalid characters 'x'"):
        solve.read_puzzles(str(f))


def test_solve_cli_on_a_trained_run(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    c = small_config(data_dir, total_steps=4)
    workdir = str(tmp_path / "run")
    train.run(c, workdir, tf.distribute.get_strategy(), mode="train")
    cfg = os.path.join(REPO, "configs", "quickstart.py") + ":runlocal"
    overrides = [
        f"--config.data.data_dir={data_dir}",
        "--config.data.config=pipeline_test",
        "--config.model.hidden_size=32",
        "--config.model.H_cycles=2",
        "--config.model.L_cycles=2",
        "--config.act.halt_max_steps=3",
    ]
    dump = str(tmp_path / "steps.npz")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trm_tf.solve",
            f"--config={cfg}",
            *overrides,
            f"--checkpoint={workdir}",
            f"--puzzle={PUZZLE}",
            f"--dump={dump}",
            f"--render={tmp_path}/steps.png",
            f"--gif={tmp_path}/steps.gif",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        out.stdout.count("step ") == 3 and "q_halt" in out.stdout and "valid Sudoku" in out.stdout
    )
    assert os.path.getsize(tmp_path / "steps.png") > 10_000
    assert os.path.getsize(tmp_path / "steps.gif") > 1_000
    d = np.load(dump)
    assert d["preds"].shape == (1, 3, 81) and d["logits"].shape == (1, 3, 81, 11)
    assert d["q_halt"].shape == (1, 3)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "trm_tf.solve",
            f"--config={cfg}",
            *overrides,
            f"--checkpoint={workdir}",
            "--puzzle=123",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "expected 81 characters" in bad.stderr
