"""Tests of the backtrack rating and of the search-needing puzzle generator of sudoku_solver.

The rating is checked against the vectorised `propagate` (a separate implementation of naked and hidden
singles) and the plain depth-first `count_solutions`, never against itself.
"""

import hashlib

import numpy as np
import pytest

from tfds_builders.sudoku_extreme import sudoku_solver as S
from trm_tf.tasks import sudoku

# Arto Inkala's 2012 "hardest Sudoku" (a published puzzle with one solution that needs search).
INKALA = "800000000003600000070090200050007000000045700000100030001000068008500010090000400"


def _grid(text: str) -> np.ndarray:
    return np.array([int(c) for c in text], np.uint8)


@pytest.fixture(scope="module")
def search_puzzles():
    return S.generate_search_puzzles(30, seed=3)


def test_singles_solvable_puzzles_rate_zero():
    q, _ = S.generate_puzzles(20, num_blanks=(18, 26), seed=5)  # naked singles solve each
    assert (S.ratings(q) == 0).all()
    q, _ = S.generate_puzzles(20, num_blanks=(40, 50), seed=2, require="unique")
    _, solved, _ = S.propagate(q)
    assert solved.any() and not solved.all()  # both kinds present
    np.testing.assert_array_equal(S.ratings(q) == 0, solved)


def test_a_known_hard_puzzle_needs_search():
    q = _grid(INKALA)
    # Independent argument: the plain search finds one solution, and the vectorised singles stall on it
    # without a contradiction, so any solver limited to singles must guess (and a wrong guess exists).
    assert S.count_solutions(q, limit=3) == 1
    _, solved, contra = S.propagate(q[None])
    assert not solved[0] and not contra[0]
    assert S.rating(q) == 160  # pinned: the count is deterministic


def _one_level_rating(q: np.ndarray) -> int | None:
    """The rating recomputed with `propagate`, for puzzles where one guess decides: branch on the first
    cell with the fewest candidates after singles, count the candidates whose propagation contradicts.
    None when some candidate is neither solved nor contradicted by singles (a deeper tree)."""
    cand, solved, _ = S.propagate(q[None])
    if solved[0]:
        return 0
    n = cand[0].sum(-1)
    open_cells = np.flatnonzero(n > 1)
    cell = open_cells[np.argmin(n[open_cells])]  # first minimum in row-major order
    children = np.repeat(q[None], 9, 0)
    digits = np.flatnonzero(cand[0, cell]) + 1
    children = children[: len(digits)]
    children[:, cell] = digits
    _, c_solved, c_contra = S.propagate(children)
    if not (c_solved | c_contra).all():
        return None
    return int(c_contra.sum())


def test_rating_counts_dead_ends_like_a_one_level_search(search_puzzles):
    lite = S.generate_search_puzzles(12, seed=5, max_blanks=24)  # mostly one guess deep
    q, r = (
        np.concatenate([search_puzzles[0], lite[0]]),
        np.concatenate([search_puzzles[2], lite[2]]),
    )
    checked = 0
    for qi, ri in zip(q, r):
        expect = _one_level_rating(qi)
        if expect is not None:
            assert ri == expect
            checked += 1
    assert checked >= 10, checked


def test_rating_needs_one_solution():
    with pytest.raises(ValueError, match="one solution"):
        S.rating(np.zeros(81, np.uint8))
    clash = _grid(INKALA)
    clash[1] = 8  # a second 8 in row 0
    with pytest.raises(ValueError, match="one solution"):
        S.rating(clash)


def test_search_puzzles_are_unique_and_need_search(search_puzzles):
    q, s, r = search_puzzles
    assert q.dtype == s.dtype == np.uint8 and q.shape == s.shape == (30, 81)
    assert (r >= 1).all()
    _, solved, contra = S.propagate(q)
    assert not solved.any() and not contra.any()
    assert all(S.count_solutions(x, limit=2) == 1 for x in q)
    assert sudoku.is_valid_solution(s).all()
    assert sudoku.givens_agree(q, s).all()
    np.testing.assert_array_equal(S.ratings(q), r)
    # Minimal: no clue can be removed without losing uniqueness.
    for x in q[:3]:
        for i in np.flatnonzero(x):
            y = x.copy()
            y[i] = 0
            assert S.count_solutions(y, limit=2) == 2


def test_search_puzzles_are_seeded_per_index():
    a = S.generate_search_puzzles(3, seed=9, max_blanks=24)
    b = S.generate_search_puzzles(5, seed=9, max_blanks=24)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y[:3])
    c = S.generate_search_puzzles(3, seed=10, max_blanks=24)
    assert not np.array_equal(a[0], c[0])


def test_max_blanks_and_rating_band():
    q, s, r = S.generate_search_puzzles(8, seed=4, max_blanks=24)
    blanks = (q == 0).sum(1)
    assert (r >= 1).all() and (blanks <= 24).all() and (blanks == 24).sum() >= 6
    _, solved, contra = S.propagate(q)
    assert not solved.any() and not contra.any()
    assert all(S.count_solutions(x, limit=2) == 1 for x in q)
    assert sudoku.givens_agree(q, s).all()
    _, _, r2 = S.generate_search_puzzles(6, seed=4, rating_band=(2, 3))
    assert ((r2 >= 2) & (r2 <= 3)).all()
    with pytest.raises(ValueError, match="rating_band"):
        S.generate_search_puzzles(1, rating_band=(0, None))


def test_easy_twins():
    q, s, r = S.generate_search_puzzles(12, seed=4, max_blanks=24, easy_fraction=0.5)
    hard, _, r_hard = S.generate_search_puzzles(12, seed=4, max_blanks=24)
    easy = r == 0
    assert 0 < easy.sum() < 12
    _, solved, _ = S.propagate(q)
    np.testing.assert_array_equal(solved, easy)
    np.testing.assert_array_equal(S.ratings(q), r)
    assert all(S.count_solutions(x, limit=2) == 1 for x in q) and sudoku.givens_agree(q, s).all()
    # A hard puzzle is the same draw as without twins; an easy twin is its hard puzzle plus clues.
    np.testing.assert_array_equal(q[~easy], hard[~easy])
    np.testing.assert_array_equal(r[~easy], r_hard[~easy])
    assert ((hard[easy] == 0) | (q[easy] == hard[easy])).all()
    assert ((q[easy] > 0).sum(1) > (hard[easy] > 0).sum(1)).all()


def test_worker_processes_give_the_same_puzzles():
    one = S.generate_search_puzzles(6, seed=12, max_blanks=24)
    two = S.generate_search_puzzles(6, seed=12, max_blanks=24, workers=2)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)


def test_greedy_removal_unchanged_by_the_faster_uniqueness_check():
    # Digest of generate_puzzles(12, min_clues=22, seed=6) taken with count_solutions as the check.
    q, _ = S.generate_puzzles(12, min_clues=22, seed=6)
    digest = hashlib.sha256(q.tobytes()).hexdigest()
    assert digest == "15e0da8845b844b60c3b79e6df1ce1027524fb39a72ac6b37039c04a28cad5f0"
