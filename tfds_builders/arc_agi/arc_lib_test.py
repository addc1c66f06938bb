"""Pure-numpy tests of the ARC encoding, augmentation, routing and validation (no TFDS build)."""

import json

import numpy as np
import pytest
from etils import epath

from trm_tf.tasks import arc, grids

from . import arc_lib as L
from . import arc_loading

DUMMY = epath.Path(__file__).parent / "dummy_data"
ARC1 = ("training", "evaluation", "concept")


@pytest.fixture(scope="module")
def tasks():
    return arc_loading.load_tasks(DUMMY, ARC1)


def test_eos_placement_and_offset():
    grid = np.array([[0, 1, 2], [3, 4, 9]], np.uint8)
    canvas = arc.encode_grid(grid, (1, 2)).reshape(30, 30)
    expected = np.zeros((30, 30), np.uint8)
    expected[1:3, 2:5] = grid + 2
    expected[3, 2:5] = 1  # row below the grid, grid columns only
    expected[1:3, 5] = 1  # column right of the grid, grid rows only
    np.testing.assert_array_equal(canvas, expected)
    assert canvas[3, 5] == 0  # no diagonal corner


def test_eos_dropped_outside_canvas():
    full = arc.encode_grid(np.full((30, 30), 5, np.uint8)).reshape(30, 30)
    assert (full == 7).all()
    tall = arc.encode_grid(np.zeros((30, 4), np.uint8)).reshape(30, 30)
    assert (tall[:, 4] == 1).all() and (tall[:, 5:] == 0).all() and (tall[:, :4] == 2).all()
    # Translated so the grid touches the bottom edge: the EOS row falls outside, the column stays.
    edge = arc.encode_grid(np.ones((3, 3), np.uint8), (27, 10)).reshape(30, 30)
    assert (edge[27:, 13] == 1).all() and edge.sum() == 9 * 3 + 3


def test_crop_inverts_encoding_with_eos():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (3, 7), (30, 30), (30, 2), (12, 30)]:
        g = rng.integers(0, 10, (h, w)).astype(np.uint8)
        np.testing.assert_array_equal(arc.crop(arc.encode_grid(g)), g)
    assert arc.crop(np.zeros(900, np.uint8)).shape == (0, 0)


def test_dihedral_inverse_table():
    g = np.arange(12).reshape(3, 4)
    for t in range(8):
        np.testing.assert_array_equal(grids.inverse_dihedral(grids.dihedral(g, t), t), g)
        np.testing.assert_array_equal(
            grids.dihedral(grids.dihedral(g, t), grids.DIHEDRAL_INVERSE[t]), g
        )
    assert (
        len({grids.dihedral(g, t).tobytes() + bytes(grids.dihedral(g, t).shape) for t in range(8)})
        == 8
    )


def test_augmentations_distinct_named_and_identified(tasks):
    plans, num_ids = L.plan_dataset(tasks, "evaluation", 10, seed=42)
    ids = np.concatenate([p.identifiers for p in plans])
    assert num_ids == 1 + len(ids) == 1 + 11 * len(tasks)
    np.testing.assert_array_equal(ids, np.arange(1, num_ids))
    for plan in plans:
        assert plan.trans_ids[0] == 0 and (plan.color_maps[0] == np.arange(10)).all()
        assert (plan.color_maps[:, 0] == 0).all()
        assert all(sorted(m) == list(range(10)) for m in plan.color_maps)
        names = [
            L.augmented_name(plan.task.name, t, m) for t, m in zip(plan.trans_ids, plan.color_maps)
        ]
        assert len(set(names)) == len(names)
        base, t, m = L.parse_augmented_name(names[3])
        assert base == plan.task.name and t == plan.trans_ids[3]
        np.testing.assert_array_equal(m, plan.color_maps[3])
        # No two copies produce the same multiset of pairs.
        pairs = plan.task.train_pairs + plan.task.test_pairs
        keys = {
            tuple(
                sorted(
                    grids.augment(a, t, m).tobytes()
                    + bytes(grids.augment(a, t, m).shape)
                    + grids.augment(b, t, m).tobytes()
                    for a, b in pairs
                )
            )
            for t, m in zip(plan.trans_ids, plan.color_maps)
        }
        assert len(keys) == len(plan.trans_ids)
    assert L.augmented_name("abc", 3, np.arange(10)) == "abc|||t3|||0123456789"


def test_split_routing(tasks):
    plans, _ = L.plan_dataset(tasks, "evaluation", 0, seed=42)
    train = L.split_statistics(plans, "train")
    test = L.split_statistics(plans, "test")
    by = {s: [t for t in tasks if t.subset == s] for s in ARC1}
    n_train = sum(
        len(t.train_pairs) + len(t.test_pairs) for s in ("training", "concept") for t in by[s]
    )
    n_train += sum(len(t.train_pairs) for t in by["evaluation"])
    assert train == {"groups": len(tasks), "puzzles": len(tasks), "examples": n_train}
    n_test = sum(len(t.test_pairs) for t in by["evaluation"])
    assert test == {"groups": 3, "puzzles": 3, "examples": n_test}
    gt = L.test_puzzles_json(plans)
    assert sorted(gt) == sorted(t.name for t in by["evaluation"])
    for plan in plans:
        idx = L.pair_test_indices(plan, "train")
        assert (idx == -1).sum() == len(plan.task.train_pairs)


def test_aug0_rows_equal_unaugmented_encoding_and_prefix(tasks):
    plans0, _ = L.plan_dataset(tasks, "evaluation", 0, seed=7)
    plans10, _ = L.plan_dataset(tasks, "evaluation", 10, seed=7)
    for p0, p10 in zip(plans0, plans10):
        for split in ("train", "test"):
            r0 = L.encode_task_split(p0, split, 7, translate=True)
            r10 = L.encode_task_split(p10, split, 7, translate=True)
            if r0 is None:
                assert r10 is None
                continue
            for key in ("inputs", "labels", "translation"):
                np.testing.assert_array_equal(r0[key][0], r10[key][0])
            pairs = L.split_pairs(p0, split)
            for e, (a, b) in enumerate(pairs):
                off = tuple(r0["translation"][0, e])
                np.testing.assert_array_equal(r0["inputs"][0, e], arc.encode_grid(a, off))
                np.testing.assert_array_equal(r0["labels"][0, e], arc.encode_grid(b, off))
            if split == "test":
                assert (r0["translation"] == 0).all()


def test_augmented_rows_and_translation(tasks):
    plans, _ = L.plan_dataset(tasks, "evaluation", 10, seed=3)
    for plan in plans:
        rec = L.encode_task_split(plan, "train", 3, translate=True)
        pairs = L.split_pairs(plan, "train")
        assert (
            ((rec["translation"] == 0).all(-1)).any(-1).all()
        )  # one pair per copy stays at (0, 0)
        for k in range(len(plan.trans_ids)):
            t, m = int(plan.trans_ids[k]), plan.color_maps[k]
            for e, (a, b) in enumerate(pairs):
                a2, b2 = grids.augment(a, t, m), grids.augment(b, t, m)
                r, c = rec["translation"][k, e]
                assert r + max(a2.shape[0], b2.shape[0]) <= 30
                assert c + max(a2.shape[1], b2.shape[1]) <= 30
                np.testing.assert_array_equal(rec["inputs"][k, e], arc.encode_grid(a2, (r, c)))
                np.testing.assert_array_equal(rec["labels"][k, e], arc.encode_grid(b2, (r, c)))


def test_deterministic_and_seed_dependent(tasks):
    a, _ = L.plan_dataset(tasks, "evaluation", 10, seed=1)
    b, _ = L.plan_dataset(tasks, "evaluation", 10, seed=1)
    c, _ = L.plan_dataset(tasks, "evaluation", 10, seed=2)
    assert all((x.color_maps == y.color_maps).all() for x, y in zip(a, b))
    assert any(
        x.color_maps.shape != z.color_maps.shape or (x.color_maps != z.color_maps).any()
        for x, z in zip(a, c)
    )


@pytest.mark.parametrize(
    "grid,needle",
    [
        ([[1, 2], [3]], "not rectangular"),
        ([[1, 10]], "outside 0..9"),
        ([[0] * 31], "larger than 30x30"),
        ([], "non-empty"),
    ],
)
def test_malformed_grid_names_file_and_task(tmp_path, grid, needle):
    for f in DUMMY.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    path = tmp_path / "arc-agi_training_challenges.json"
    data = json.loads(path.read_text())
    name = sorted(data)[1]
    data[name]["train"][0]["output"] = grid
    path.write_text(json.dumps(data))
    with pytest.raises(arc_loading.ArcDataError, match=needle) as err:
        arc_loading.load_tasks(tmp_path, ARC1)
    assert "arc-agi_training_challenges.json" in str(err.value) and name in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(
        arc_loading.ArcDataError, match="arc-agi_training_challenges.json: file not found"
    ):
        arc_loading.load_tasks(tmp_path, ARC1)


def test_failed_build_leaves_no_dataset(tmp_path):
    import tensorflow_datasets as tfds

    from . import arc_agi_dataset_builder

    manual = tmp_path / "manual"
    manual.mkdir()
    for f in DUMMY.iterdir():
        (manual / f.name).write_text(f.read_text())
    (manual / "arc-agi_concept_solutions.json").write_text("{}")
    data_dir = tmp_path / "data"
    builder = arc_agi_dataset_builder.Builder(config="arc1_aug0", data_dir=str(data_dir))
    with pytest.raises(arc_loading.ArcDataError, match="no solutions"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )
    assert not list(data_dir.rglob("dataset_info.json"))
    assert not (data_dir / "arc_agi" / "arc1_aug0" / "1.0.0").exists()


def test_same_config_gives_identical_records(tmp_path):
    import tensorflow_datasets as tfds

    from . import arc_agi_dataset_builder

    files = []
    for run in ("a", "b"):
        builder = arc_agi_dataset_builder.Builder(config="arc1_aug10", data_dir=str(tmp_path / run))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY))
        )
        d = epath.Path(builder.data_dir)
        files.append(
            {
                f.name: f.read_bytes()
                for f in d.iterdir()
                if ".tfrecord" in f.name or f.suffix == ".json" and "info" not in f.name
            }
        )
    assert len(files[0]) > 60 and files[0] == files[1]
    meta = json.loads(files[0]["metadata.json"])
    assert meta["num_puzzle_identifiers"] == 1 + 11 * 9
    assert meta["total_puzzles"] == {"train": 99, "test": 33}
    truth = json.loads(files[0]["test_puzzles.json"])
    # Test-split `group` g is the g-th task of test_puzzles.json (the evaluator relies on it).
    rows = list(tfds.as_numpy(builder.as_dataset(split="test")))
    assert len(rows) == 44
    for r in rows:
        assert r["task_name"].decode() == list(truth)[r["group"]]
        assert r["test_index"] >= 0 and (r["translation"] == 0).all()
    assert sorted(truth) == sorted(
        json.loads((DUMMY / "arc-agi_evaluation_solutions.json").read_text())
    )
