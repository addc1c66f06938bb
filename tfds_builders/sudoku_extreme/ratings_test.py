"""The search-needing configs: a tiny build is seeded, reproducible, disjoint and rated; the rating CLI
reports what the build's metadata holds; the documented distribution figures are what the CLI prints."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import builder_utils
from tfds_builders.sudoku_extreme import ratings as ratings_cli
from tfds_builders.sudoku_extreme import sudoku_extreme_dataset_builder as sx
from tfds_builders.sudoku_extreme import sudoku_solver
from trm_tf.tasks import sudoku

tfds.disable_progress_bar()
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "datasets.md"


def _build(config: str, data_dir) -> sx.Builder:
    builder = sx.Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare()
    return builder


def _records(builder, split):
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return {int(ex["puzzle_index"]): ex for ex in tfds.as_numpy(ds)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("extreme_tiny")
    return _build("generated_extreme_tiny", root / "a"), _build(
        "generated_extreme_tiny", root / "b"
    )


def test_tiny_build_is_reproducible_rated_and_disjoint(tiny):
    a, b = tiny
    files_a = sorted(epath.Path(a.data_dir).glob("*.tfrecord*"))
    files_b = sorted(epath.Path(b.data_dir).glob("*.tfrecord*"))
    assert files_a and [f.name for f in files_a] == [f.name for f in files_b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(files_a, files_b))

    meta = builder_utils.read_metadata(
        epath.Path(a.data_dir).parents[2], "sudoku_extreme/generated_extreme_tiny"
    )
    train, test = _records(a, "train"), _records(a, "test")
    assert len(train) == 4 * 3 and len(test) == 3
    assert meta["total_groups"] == {"train": 4, "test": 3}
    questions = {}
    for split, recs in (("train", train), ("test", test)):
        originals = [ex for ex in recs.values() if split == "test" or ex["puzzle_index"] % 3 == 0]
        q = np.stack([sudoku.decode(ex["inputs"]) for ex in originals])
        s = np.stack([sudoku.decode(ex["labels"]) for ex in originals])
        assert sudoku.is_valid_solution(s).all() and sudoku.givens_agree(q, s).all()
        # Every puzzle (shuffled copies too) has one solution and needs search.
        every = np.stack([sudoku.decode(ex["inputs"]) for ex in recs.values()])
        assert all(sudoku_solver.count_solutions(x, limit=2) == 1 for x in every)
        _, solved, contra = sudoku_solver.propagate(every)
        assert not solved.any() and not contra.any()
        # The metadata's ratings are the base puzzles' ratings, by group.
        assert meta["ratings"][split] == sudoku_solver.ratings(q).tolist()
        assert min(meta["ratings"][split]) >= 1
        questions[split] = {x.tobytes() for x in every}
    assert not questions["train"] & questions["test"]


def test_cli_reads_the_build_or_generates_the_same(tiny, capsys):
    a, _ = tiny
    data_dir = str(epath.Path(a.data_dir).parents[2])
    from_meta, no_blanks = ratings_cli.split_ratings("generated_extreme_tiny", data_dir)
    generated, blanks = ratings_cli.split_ratings("generated_extreme_tiny")
    assert no_blanks is None and set(blanks) == {"train", "test"}
    for split in ("train", "test"):
        np.testing.assert_array_equal(from_meta[split], generated[split])
    assert ratings_cli.main(["generated_extreme_tiny", f"--data_dir={data_dir}"]) == 0
    out = capsys.readouterr().out
    mean = f"{generated['test'].mean():.2f}"
    assert re.search(rf"^\| test \| 3 \| {re.escape(mean)} \|", out, re.M), out
    with pytest.raises(SystemExit, match="not a search-needing"):
        ratings_cli.main(["generated_easy"])


def _documented_runs() -> list[tuple[str, list[str]]]:
    """(command, the table rows and blanks lines printed under it) of each ```bash block of the doc's
    ratings section followed by a ```text block."""
    text = DOC.read_text(encoding="utf-8")
    pairs = re.findall(
        r"```bash\n(python -m tfds_builders\.sudoku_extreme\.ratings [^\n]+)\n```\n+```text\n(.*?)```",
        text,
        re.S,
    )
    return [(cmd, out.strip().splitlines()) for cmd, out in pairs]


def test_the_doc_shows_rating_commands_with_their_output():
    runs = _documented_runs()
    assert {cmd.split()[3] for cmd, _ in runs} == {
        "generated_extreme",
        "generated_extreme_lite",
        "generated_extreme_mix",
    }


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TRM_DOC_FIGURES"),
    reason="regenerates 2,000 puzzles per config (3-8 min each on 2 cores), outside CI: "
    "TRM_DOC_FIGURES=1 python -m pytest tfds_builders/sudoku_extreme/ratings_test.py",
)
@pytest.mark.parametrize(
    "cmd,printed", _documented_runs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_documented_rating_figures(cmd, printed):
    # Generates the config's 2,000 puzzles: the doc's figures are what the command prints. A study
    # output, not a unit test: CI runs the CLI on the tiny build above; this runs on demand.
    argv = cmd.split()
    res = subprocess.run(
        [sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines() == printed
