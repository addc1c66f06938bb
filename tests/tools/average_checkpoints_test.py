"""The checkpoint-averaging tool: the mean of a run's last K checkpoints from the run directory alone,
its output loadable by solve, and one error line when a checkpoint does not match the config."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.testing.tiny_runs import make_run, save_checkpoint, tiny_config, weights
from trm_tf.tools import average_checkpoints, restore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_average_of_the_last_k(tmp_path):
    data_dir = str(tmp_path / "no_data")
    run = str(tmp_path / "run")
    saved = make_run(run, tiny_config(data_dir), steps=(1, 2, 3))
    paths = average_checkpoints.last_checkpoints(run, 2)
    assert paths == [saved[2][0], saved[3][0]]
    out = average_checkpoints.average(
        restore.resolve_config(run), paths, os.path.join(run, "averaged", "ckpt")
    )
    # The output has no EMA: solve reads it with --noema, the config found two levels up.
    config = restore.resolve_config(out)
    got = weights(restore.load_model(config, out, use_ema=False))
    for g, a, b in zip(got, saved[2][1], saved[3][1]):
        np.testing.assert_allclose(g, (a + b) / 2, rtol=0, atol=1e-6)
    with pytest.raises(restore.RestoreError, match="no EMA weights"):
        restore.load_model(config, out)


def test_a_mismatched_checkpoint_stops_the_average(tmp_path):
    data_dir = str(tmp_path / "no_data")
    run = str(tmp_path / "run")
    cfg = tiny_config(data_dir)
    make_run(run, cfg, steps=(1, 2))
    # Step 3 written by another model (attention vs MLP-T) into the same run.
    other = tiny_config(data_dir, mlp_t=not cfg.model.mlp_t)
    save_checkpoint(os.path.join(run, "checkpoints"), other, step=3)
    paths = average_checkpoints.last_checkpoints(run, 3)
    with pytest.raises(restore.RestoreError, match=r"ckpt-3 lacks \d+ of the"):
        average_checkpoints.average(cfg, paths[::-1], str(tmp_path / "out" / "ckpt"))
    with pytest.raises(restore.RestoreError, match="no checkpoints in"):
        average_checkpoints.last_checkpoints(str(tmp_path), 3)


def test_cli_with_the_run_dir_alone(tmp_path):
    run = str(tmp_path / "run")
    make_run(run, tiny_config(str(tmp_path / "no_data")), steps=(1, 2))
    out = str(tmp_path / "avg" / "ckpt")
    cmd = [sys.executable, "-m", "trm_tf.tools.average_checkpoints", f"--checkpoint={run}"]
    res = subprocess.run(
        cmd + ["--last_k=2", f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == out and os.path.exists(out + ".index")


def test_average_around_the_best_checkpoint(tmp_path):
    """--around=best: the best checkpoint (RUN_DIR/best/ckpt-3) and the K-1 ring checkpoints before its
    step (1 and 2; step 4 is newer and left out), averaged; fewer on disk than asked: a warning, and the
    ones there are used. The CLI writes RUN_DIR/averaged_best/ckpt by default and names what it used."""
    run = str(tmp_path / "run")
    cfg = tiny_config(str(tmp_path / "no_data"))
    saved = make_run(run, cfg, steps=(1, 2, 3, 4))
    best = save_checkpoint(os.path.join(run, "best"), cfg, step=3, shift=3.0)
    paths = average_checkpoints.around_best(run, 3)
    assert paths == [saved[1][0], saved[2][0], best[0]]
    out = average_checkpoints.average(cfg, paths, str(tmp_path / "avg" / "ckpt"))
    got = weights(restore.load_model(cfg, out, use_ema=False))
    for g, a, b, c in zip(got, saved[1][1], saved[2][1], best[1]):
        np.testing.assert_allclose(g, (a + b + c) / 3, rtol=0, atol=1e-6)
    cmd = [sys.executable, "-m", "trm_tf.tools.average_checkpoints", f"--checkpoint={run}"]
    res = subprocess.run(
        cmd + ["--around=best", "--last_k=5"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == os.path.join(run, "averaged_best", "ckpt")
    assert "Only 2 checkpoint(s) before the best (step 3)" in res.stderr
    assert "Averaged 3 checkpoints around the best one" in res.stderr
    with pytest.raises(restore.RestoreError, match="no best checkpoint in"):
        average_checkpoints.around_best(str(tmp_path / "run_without_best"), 2)
