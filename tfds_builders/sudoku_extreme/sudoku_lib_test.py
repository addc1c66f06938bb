"""Pure-numpy tests of sudoku_lib: encoding, validation, shuffle_sudoku, subsampling, generation."""

import numpy as np
import pytest

from tfds_builders.sudoku_extreme import sudoku_lib as L
from tfds_builders.sudoku_extreme import sudoku_solver
from trm_tf.tasks import sudoku


@pytest.fixture(scope="module")
def puzzles():
    return sudoku_solver.generate_puzzles(20, num_blanks=(25, 40), seed=11, require="unique")


def _spec_shuffle(grid, t, k):
    """Loop version of the reference's shuffle_sudoku for transform k (independent of the vector code)."""
    g = np.asarray(grid).reshape(9, 9)
    if t["transpose"][k]:
        g = g.T
    out = np.zeros((9, 9), np.uint8)
    for i in range(9):
        for j in range(9):
            out[i, j] = t["digit_map"][k][g[t["row_perm"][k][i], t["col_perm"][k][j]]]
    return out.reshape(81)


def test_encode_decode():
    grid = np.array([0, 1, 5, 9] + [0] * 77, np.uint8)
    tok = sudoku.encode(grid)
    assert tok.dtype == np.uint8
    np.testing.assert_array_equal(tok[:4], [1, 2, 6, 10])
    np.testing.assert_array_equal(sudoku.decode(tok), grid)


def test_transforms_are_valid_permutations():
    t = L.draw_transforms(np.random.default_rng(0), 500)
    assert (t["digit_map"][:, 0] == 0).all()
    assert (np.sort(t["digit_map"][:, 1:], axis=1) == np.arange(1, 10)).all()
    for key in ("row_perm", "col_perm"):
        p = t[key]
        assert (np.sort(p, axis=1) == np.arange(9)).all()
        # Rows stay inside their band: positions 3b..3b+2 map into one band of the input.
        bands = p.reshape(-1, 3, 3) // 3
        assert (bands == bands[:, :, :1]).all()
    assert 0.4 < t["transpose"].mean() < 0.6


def test_augmentation_matches_spec_and_keeps_validity(puzzles):
    q, s = puzzles
    for row in range(3):
        qa, sa = L.augment_puzzle(q[row], s[row], num_aug=50, seed=5, row=row)
        assert qa.shape == sa.shape == (51, 81) and qa.dtype == np.uint8
        np.testing.assert_array_equal(qa[0], q[row])  # Copy 0 is the original.
        np.testing.assert_array_equal(sa[0], s[row])
        assert sudoku.is_valid_solution(sa).all()
        assert sudoku.givens_agree(qa, sa).all()
        assert ((qa == 0).sum(1) == (q[row] == 0).sum()).all()
        # The same transform acts on puzzle and solution, exactly as the spec's loop.
        t = L.draw_transforms(L.augment_rng(5, row), 50)
        for k in range(0, 50, 7):
            np.testing.assert_array_equal(qa[k + 1], _spec_shuffle(q[row], t, k))
            np.testing.assert_array_equal(sa[k + 1], _spec_shuffle(s[row], t, k))
        assert len({x.tobytes() for x in sa}) > 45  # Copies differ from each other.


def test_shuffle_sudoku_single(puzzles):
    q, s = puzzles
    nq, ns = L.shuffle_sudoku(q[0], s[0], np.random.default_rng(3))
    assert sudoku.is_valid_solution(ns) and sudoku.givens_agree(nq, ns)[0]
    assert (nq == 0).sum() == (q[0] == 0).sum()


def test_augmentation_determinism_and_prefix(puzzles):
    q, s = puzzles
    a1 = L.augment_puzzle(q[4], s[4], 30, seed=9, row=4)
    a2 = L.augment_puzzle(q[4], s[4], 30, seed=9, row=4)
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])
    # Fewer augmentations are a prefix; another row or seed gives other copies.
    short = L.augment_puzzle(q[4], s[4], 10, seed=9, row=4)
    np.testing.assert_array_equal(short[1], a1[1][:11])
    assert not np.array_equal(L.augment_puzzle(q[4], s[4], 30, seed=9, row=5)[1], a1[1])
    assert not np.array_equal(L.augment_puzzle(q[4], s[4], 30, seed=8, row=4)[1], a1[1])


def test_subsample_nested_and_seeded():
    sizes = (100, 250, 500, 1000, 2000, 5000, 10_000)
    subs = [L.subsample_rows(20_000, n, seed=0) for n in sizes]
    for small, big in zip(subs, subs[1:]):
        np.testing.assert_array_equal(small, big[: len(small)])
    assert len(set(subs[-1].tolist())) == 10_000
    np.testing.assert_array_equal(subs[0], L.subsample_rows(20_000, 100, seed=0))
    assert not np.array_equal(subs[0], L.subsample_rows(20_000, 100, seed=1))
    np.testing.assert_array_equal(L.subsample_rows(7, None, seed=0), np.arange(7))


def test_generator_unique_and_blank_counts():
    q, s = sudoku_solver.generate_puzzles(40, num_blanks=(6, 12), seed=1)
    blanks = (q == 0).sum(1)
    assert blanks.min() >= 6 and blanks.max() <= 12
    assert sudoku.is_valid_solution(s).all() and sudoku.givens_agree(q, s).all()
    _, solved, _ = sudoku_solver.propagate(
        q, hidden=False
    )  # Easy level: naked singles alone solve it.
    assert solved.all()
    assert len({x.tobytes() for x in s}) == 40  # Distinct grids, not relabellings of one.
    q2, s2 = sudoku_solver.generate_puzzles(40, num_blanks=(6, 12), seed=1)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(s, s2)
    qe, _ = sudoku_solver.generate_puzzles(5, num_blanks=9, seed=2)
    assert ((qe == 0).sum(1) == 9).all()

    qm, sm = sudoku_solver.generate_puzzles(8, num_blanks=(40, 50), seed=3, require="unique")
    assert all(sudoku_solver.count_solutions(x, limit=3) == 1 for x in qm)
    assert sudoku.givens_agree(qm, sm).all() and ((qm == 0).sum(1) >= 40).all()

    qh, sh = sudoku_solver.generate_puzzles(4, min_clues=24, seed=4)
    assert all(sudoku_solver.count_solutions(x, limit=3) == 1 for x in qh)
    assert sudoku.givens_agree(qh, sh).all() and ((qh > 0).sum(1) >= 24).all()
    assert ((qh > 0).sum(1) <= 30).all()


def test_solution_counting_and_validity():
    _, s = sudoku_solver.generate_puzzles(2, num_blanks=10, seed=5)
    assert sudoku_solver.count_solutions(s[0]) == 1
    assert sudoku_solver.count_solutions(np.zeros(81, np.uint8), limit=2) == 2
    bad = s[0].copy()
    bad[[0, 1]] = bad[[1, 0]]  # Swapping two cells of a row breaks columns/boxes.
    assert not sudoku.is_valid_solution(bad)
    assert sudoku_solver.count_solutions(bad) == 0
    # An empty grid has many solutions, so it is not unique.
    assert not sudoku_solver.has_unique_solution(np.zeros((1, 81), np.uint8))[0]


def _csv(rows):
    return "source,question,answer,rating\n" + "".join(f"x,{q},{a},{r}\n" for q, a, r in rows)


def test_parse_csv_ok_and_filter(puzzles):
    q, s = puzzles
    text = L.to_csv_text(q[:3], s[:3]).replace(",0\n", ",5\n", 1)
    parsed = L.parse_csv_text(text, "t.csv")
    np.testing.assert_array_equal(parsed["questions"], q[:3])
    np.testing.assert_array_equal(parsed["solutions"], s[:3])
    np.testing.assert_array_equal(parsed["lines"], [2, 3, 4])
    only = L.parse_csv_text(text, "t.csv", min_difficulty=1)
    assert len(only["questions"]) == 1 and only["ratings"][0] == 5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda qs, a: (qs[:-1], a), "question has 80 chars"),
        (lambda qs, a: (qs[:-1] + "x", a), "only '.' and 1-9"),
        (lambda qs, a: (qs, a[:-1] + "0"), "only digits 1-9"),
        (lambda qs, a: (qs, a[1] + a[0] + a[2:]), None),  # Breaks validity (maybe givens too).
    ],
)
def test_parse_csv_errors_name_file_and_line(puzzles, mutate, message):
    q, s = puzzles
    rows = []
    for i in range(4):
        qs = "".join("." if d == 0 else str(d) for d in q[i])
        a = "".join(str(d) for d in s[i])
        rows.append(mutate(qs, a) + (0,) if i == 2 else (qs, a, 0))
    with pytest.raises(L.SudokuFormatError, match=r"^bad\.csv: line 4: ") as err:
        L.parse_csv_text(_csv(rows), "bad.csv")
    if message:
        assert message in str(err.value)
    else:
        assert "givens" in str(err.value) or "not a valid Sudoku" in str(err.value)


def test_parse_csv_disagreeing_answer(puzzles):
    q, s = puzzles
    # A valid grid (relabelled) that contradicts the givens of the question.
    other = np.where(s[0] == 9, 1, np.where(s[0] == 1, 9, s[0]))
    qs = "".join("." if d == 0 else str(d) for d in q[0])
    assert "1" in qs or "9" in qs
    text = _csv([(qs, "".join(str(d) for d in other), 0)])
    with pytest.raises(L.SudokuFormatError, match="line 2: answer disagrees with the givens"):
        L.parse_csv_text(text, "f.csv")
    with pytest.raises(L.SudokuFormatError, match="line 1"):
        L.parse_csv_text("a,b,c\n", "f.csv")


def test_solve(puzzles):
    q, s = puzzles
    for i in range(5):
        np.testing.assert_array_equal(sudoku_solver.solve(q[i]), s[i])
    assert sudoku_solver.solve(np.zeros(81, np.uint8)) is not None and sudoku.is_valid_solution(
        sudoku_solver.solve(np.zeros(81))
    )
    clash = q[0].copy()
    clash[:2] = 5  # Two 5s in the first row.
    assert sudoku_solver.solve(clash) is None
