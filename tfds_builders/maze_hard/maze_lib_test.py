"""Pure-numpy tests of the Maze-Hard encoding, validation, generator and a tiny generated build."""

import numpy as np
import pytest
from etils import epath

from trm_tf.tasks import grids, maze

from . import maze_lib as M

DUMMY = epath.Path(__file__).parent / "dummy_data"


def _count_shortest_paths(open_mask, start, goal):
    dist, _ = M.bfs_distances(open_mask, start)
    ways = np.zeros(open_mask.shape, np.int64)
    ways[start] = 1
    for d in range(1, dist[goal] + 1):
        for r, c in np.argwhere(dist == d):
            ways[r, c] = sum(
                ways[r + dr, c + dc]
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < 30 and 0 <= c + dc < 30 and dist[r + dr, c + dc] == d - 1
            )
    return ways[goal], dist[goal]


def test_encoding_charset_and_roundtrip():
    text = "# SGo" * 180
    ids = maze.encode(text)
    np.testing.assert_array_equal(ids[:5], [1, 2, 3, 4, 5])
    assert maze.decode(ids) == text and maze.VOCAB_SIZE == 6


def test_generator_filter_optimality_and_uniqueness():
    q, a, lens = M.generate(4, seed=5, split_id=0, min_path_length=110)
    assert (lens > 110).all()
    for i in range(4):
        grid = q[i].reshape(30, 30)
        start = tuple(np.argwhere(grid == maze.START)[0])
        goal = tuple(np.argwhere(grid == maze.GOAL)[0])
        ways, dist = _count_shortest_paths(grid != maze.WALL, start, goal)
        assert ways == 1 and dist == lens[i]
        path = a[i].reshape(30, 30) == maze.PATH
        assert path.sum() == dist - 1  # cells strictly between S and G
        # The drawn cells form a connected S->G walk: each path cell has exactly 2 neighbours on it.
        on = path | (grid == maze.START) | (grid == maze.GOAL)
        for r, c in np.argwhere(path):
            nb = sum(
                on[r + dr, c + dc]
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < 30 and 0 <= c + dc < 30
            )
            assert nb == 2
        M.validate_pair(
            maze.decode(q[i]), maze.decode(a[i]), "gen"
        )  # consistent with the CSV rules
    # Configurable threshold.
    _, _, short = M.generate(3, seed=5, split_id=0, min_path_length=20)
    assert (short > 20).all()


def test_generator_deterministic_per_row():
    a = M.generate(3, seed=9, split_id=1)
    b = M.generate(3, seed=9, split_id=1)
    c = M.generate(2, seed=9, split_id=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[0][:2], c[0])  # row i depends only on (seed, split, i)
    assert not np.array_equal(M.generate(1, seed=10, split_id=1)[0], a[0][:1])


def test_solve_matches_dummy_csv_answers():
    inputs, labels = M.parse_csv((DUMMY / "train.csv").read_text(), "train.csv")
    assert inputs.shape == (3, 900) and labels.min() >= 1
    for q, a in zip(inputs, labels):
        np.testing.assert_array_equal(M.solve(q), a)


def test_dihedral_rows():
    rows = np.arange(2 * 900).reshape(2, 900) % 251
    for t in range(8):
        out = maze.dihedral_rows(rows, t)
        for i in range(2):
            np.testing.assert_array_equal(
                out[i].reshape(30, 30), grids.dihedral(rows[i].reshape(30, 30), t)
            )


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda q, a: (q[:-1], a), "question has 899 characters"),
        (lambda q, a: (q, a[:-1] + "x"), "outside"),
        (lambda q, a: (q, a.replace("S", " ", 1)), "start differ"),
        (lambda q, a: (q, "o" + a[1:] if q[0] == "#" else "#" + a[1:]), "differ|non-open"),
        (lambda q, a: (q.replace("G", " "), a), "exactly one"),
    ],
)
def test_csv_errors_name_file_and_line(mutate, needle):
    lines = (DUMMY / "train.csv").read_text().splitlines()
    src, q, a, rating = lines[2].split(",")
    q, a = mutate(q, a)
    lines[2] = ",".join([src, q, a, rating])
    with pytest.raises(M.MazeDataError, match=needle) as err:
        M.parse_csv("\n".join(lines) + "\n", "bad.csv")
    assert str(err.value).startswith("bad.csv:3:")


def test_tiny_generated_build_and_metadata(tmp_path):
    import tensorflow_datasets as tfds

    from . import maze_hard_dataset_builder as B

    builder = B.Builder(config=B.TINY_CONFIG, data_dir=str(tmp_path))
    builder.download_and_prepare()
    assert builder.info.splits["train"].num_examples == 6
    assert builder.info.splits["test"].num_shards == 3
    rows = list(tfds.as_numpy(builder.as_dataset(split="test")))
    _, labels, _ = M.generate(3, seed=1, split_id=1)
    got = {int(r["puzzle_index"]): r["labels"] for r in rows}
    for i in range(3):
        np.testing.assert_array_equal(got[i], labels[i])
    meta = builder.info.metadata
    assert meta["vocab_size"] == 6 and meta["total_groups"] == {"train": 6, "test": 3}
    assert meta["num_puzzle_identifiers"] == 1


def test_same_config_gives_identical_records(tmp_path):
    from . import maze_hard_dataset_builder as B

    files = []
    for run in ("a", "b"):
        builder = B.Builder(config=B.TINY_CONFIG, data_dir=str(tmp_path / run))
        builder.download_and_prepare()
        d = epath.Path(builder.data_dir)
        files.append({f.name: f.read_bytes() for f in d.iterdir() if ".tfrecord" in f.name})
    assert files[0] and files[0] == files[1]


def test_source_falls_back_to_download_without_manual_csvs(tmp_path):
    from . import maze_hard_dataset_builder as B

    class FakeDlManager:
        requested = None

        @property
        def manual_dir(self):
            raise AssertionError("Manual directory ... does not exist or is empty")

        def download(self, urls):
            FakeDlManager.requested = urls
            return {s: str(DUMMY / f"{s}.csv") for s in urls}

    builder = B.Builder(config="hard", data_dir=str(tmp_path))
    paths = builder._source_paths(FakeDlManager())
    assert FakeDlManager.requested == {
        s: f"https://huggingface.co/datasets/sapientinc/maze-30x30-hard-1k/resolve/main/{s}.csv"
        for s in ("train", "test")
    }
    assert paths["test"].name == "test.csv"
    # With both CSVs in the manual dir, nothing is downloaded.
    FakeDlManager.requested = None
    manual = type("M", (FakeDlManager,), {"manual_dir": DUMMY})()
    assert builder._source_paths(manual)["train"] == DUMMY / "train.csv"
    assert FakeDlManager.requested is None
