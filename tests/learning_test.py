"""A tiny TRM really learns: loss falls and it solves unseen easy Sudokus, on CPU, in about a minute."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import small_config
from tests.testing.tiny_datasets import build_tiny_sudoku
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sudoku_builder
from trm_tf import train
from trm_tf.workdir import RunDir, read_jsonl

# End to end: trains until the model solves unseen puzzles (about a minute or more on CPU).
pytestmark = pytest.mark.slow

# 2000 generated puzzles with 2-4 blanks each (naked singles), 64 unseen test puzzles.
EASY = sudoku_builder.SudokuConfig(
    name="learning_test",
    description="Test-only generated config.",
    source="generated",
    seed=11,
    num_train=2000,
    num_test=64,
    num_aug=0,
    num_blanks=(2, 4),
    require="singles",
)


def test_tiny_trm_learns_easy_sudoku(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir, EASY)
    c = small_config(data_dir, total_steps=300, steps_per_loop=25, log_every_steps=25)
    c.data.config = EASY.name
    c.model.H_cycles, c.model.L_cycles, c.act.halt_max_steps = 2, 1, 2
    c.optim.lr = c.optim.puzzle_emb_lr = 3e-3
    c.optim.weight_decay = 0.1
    c.optim.ema_rate = 0.95
    c.train.global_batch_size = 32
    c.train.eval_every_steps = 150
    c.eval.subset_size = 64  # the whole test split (64 rows): periodic evaluations are full
    c.eval.global_batch_size = 64
    workdir = str(tmp_path / "run")
    final = train.run(c, workdir, tf.distribute.get_strategy(), mode="train_and_eval")
    lines = [r for r in read_jsonl(workdir + "/metrics.jsonl") if r["split"] == "train"]
    first, last = lines[0], lines[-1]
    assert last["lm_loss"] < 0.5 * first["lm_loss"]
    assert first["exact_accuracy"] == 0.0
    assert final["num_examples"] == 64
    # Unseen puzzles, EMA weights, all N_sup steps: at least half solved exactly (about 0.6-0.8 seen).
    assert final["exact_accuracy"] >= 0.5, final
    assert np.isfinite(final["q_halt_loss"])
    # eval.subset_size >= the test rows: the periodic evaluation at step 150 also read every row, and says so.
    history = RunDir(workdir).eval_results()["history"]
    assert [(h["step"], h["full"], h["num_examples"]) for h in history] == [
        (150, True, 64),
        (300, True, 64),
    ]
