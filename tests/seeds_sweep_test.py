"""A 2-seed sweep end to end: `sweep.py --seeds=0,1` trains a catalogue run (runlocal, tiny shapes) under
each seed into its own run directory, and `python -m trm_tf.analysis report` groups the two into one arm
with n, mean and a 95% interval; each run's HParams session names its seed, and each run's best
checkpoint is named in its run_summary.json and restores from best/ alone."""

import json
import os
import shlex
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.testing.launch import REPO, launch_cmd
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf.tools import restore


@pytest.mark.slow  # two launch.py runs
def test_two_seed_sweep_and_its_report(tmp_path):
    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    # launch_cmd's tiny-shape flags after its --config and --workdir, 4 steps with an evaluation at 4.
    tiny = launch_cmd(data_dir, "unused")[4:] + [
        "--config.train.total_steps=4",
        "--config.train.eval_every_steps=4",
    ]
    root = str(tmp_path / "runs")
    sweep = [
        sys.executable,
        os.path.join(REPO, "sweep.py"),
        "E2.1b",
        "--seeds=0,1",
        f"--workdir_root={root}",
        "--config_arg=runlocal",
        "--extra=" + shlex.join(tiny),
    ]
    out = subprocess.run(sweep, capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = sorted(os.listdir(root))
    assert runs == ["e2_1_ema_off-seed0", "e2_1_ema_off-seed1", "sweep_summary.json"], runs
    for seed in (0, 1):
        workdir = os.path.join(root, f"e2_1_ema_off-seed{seed}")
        (events,) = tf.io.gfile.glob(os.path.join(workdir, "events.out.tfevents.*"))
        first = next(
            v for e in tf.compat.v1.train.summary_iterator(events) for v in e.summary.value
        )
        assert first.metadata.plugin_data.plugin_name == "hparams"
        assert b"seed" in first.metadata.plugin_data.content
        # Its best checkpoint: named in run_summary.json, on disk in best/, restorable on its own.
        best = json.load(open(os.path.join(workdir, "run_summary.json")))["best"]
        assert best["metric"] == "exact_accuracy" and best["step"] == 4, best
        prefix = restore.checkpoint_prefix(os.path.join(workdir, "best"))
        assert prefix == os.path.join(workdir, "best", "ckpt-4")
        model = restore.load_model(restore.resolve_config(prefix), prefix)
        assert model.num_params() > 0

    report = subprocess.run(
        [sys.executable, "-m", "trm_tf.analysis", "report", f"{root}/*", f"--out={tmp_path}/rep"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    text = open(os.path.join(tmp_path, "rep", "report.md")).read()
    assert "## Seeds: mean ± 95% interval per arm" in text
    row = next(x for x in text.splitlines() if x.startswith("| e2_1_ema_off |"))
    assert "| 0,1 | 2 |" in row and "(n=2)" in row, row
    assert os.path.exists(os.path.join(tmp_path, "rep", "seeds_exact_accuracy.png"))
