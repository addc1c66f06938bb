"""The input-pipeline benchmark runs end to end on a tiny generated Sudoku set and reports its figures."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import input_pipeline  # noqa: E402


def test_tiny_sudoku_run_prints_one_record(tmp_path, capsys):
    input_pipeline.main(
        [
            "--examples=200",
            "--num_aug=1",
            "--num_test=8",
            "--batch=16",
            "--windows=1",
            "--window_batches=2",
            "--warmup_batches=1",
            f"--data_dir={tmp_path}",
            "--skip_arc",
        ]
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert len(lines) == 1
    rec = lines[0]
    assert rec["bench"] == "input_pipeline" and rec["batch"] == 16
    assert rec["num_train_examples"] == 200  # 100 puzzles, each with one shuffled copy
    assert rec["build"]["built_now"] is True
    assert rec["train"]["examples_per_s"] > 0 and rec["meets_target"] in (True, False)
    assert rec["eval"] and "machine" in rec and "tf_version" in rec
