"""The time-to-first-step benchmark: "first launch after `tfds build`" restores the build's state every
round, and runs end to end on a small CSV config (slow: a real `tfds build` and two launches)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import first_step  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_restore_deletes_what_a_launch_added(tmp_path):
    version = tmp_path / "sudoku_extreme" / "x" / "1.0.0"
    version.mkdir(parents=True)
    (version / "a.tfrecord").write_text("r")
    built = first_step.files_under(str(tmp_path))
    (version / "decoded_cache").mkdir()
    (version / "decoded_cache" / "a.tfrecord.raw").write_text("c")
    (version / "a.tfrecord").write_text("rewritten")  # a file of the build stays
    first_step.restore(str(tmp_path), built)
    assert first_step.files_under(str(tmp_path)) == built
    assert (version / "a.tfrecord").read_text() == "rewritten"


@pytest.mark.slow
def test_first_launch_after_tfds_build_end_to_end(tmp_path, capsys):
    first_step.main(
        [
            "--after_tfds_build",
            f"--repos={REPO}",
            "--rounds=1",
            "--dataset=sudoku_extreme/full_aug0",
            "--csv_rows=300",
            f"--scratch={tmp_path}",
        ]
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    build, run, summary = (next(x for x in lines if x["bench"] == b) for b in first_step.RECORDS)
    assert "tfds build" in build["command"] and "--config=full_aug0" in build["command"]
    assert build["build_s"] > 0
    assert run["fresh_s"] > 0 and run["resume_s"] > 0
    assert summary["after_tfds_build"] is True and summary["fresh_s"] == [run["fresh_s"]]
    # The build left the decoded cache, so the launch added nothing to the data dir.
    assert os.path.exists(os.path.join(tmp_path, "0", "sudoku_extreme", "full_aug0", "1.0.0"))
    assert any(
        "decoded_cache" in d for d, _, _ in os.walk(os.path.join(tmp_path, "0", "sudoku_extreme"))
    )
