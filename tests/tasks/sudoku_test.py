"""trm_tf.tasks.sudoku: token encoding and validity checks against independent definitions."""

import numpy as np

from trm_tf.tasks import sudoku


def _solved_grid() -> np.ndarray:
    """A valid Sudoku from the classic shifting pattern."""
    return np.array([(3 * (r % 3) + r // 3 + c) % 9 + 1 for r in range(9) for c in range(9)])


def _valid_by_sets(g: np.ndarray) -> bool:
    g = g.reshape(9, 9)
    boxes = [g[r : r + 3, c : c + 3].ravel() for r in (0, 3, 6) for c in (0, 3, 6)]
    return all(set(x.tolist()) == set(range(1, 10)) for x in list(g) + list(g.T) + boxes)


def test_constants_and_encoding():
    assert (sudoku.SEQ_LEN, sudoku.VOCAB_SIZE, sudoku.PAD_ID, sudoku.BLANK_TOKEN) == (81, 11, 0, 1)
    digits = np.arange(10)
    np.testing.assert_array_equal(sudoku.encode(digits), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert sudoku.encode(digits).dtype == np.uint8
    np.testing.assert_array_equal(sudoku.decode(sudoku.encode(digits)), digits)
    assert sudoku.decode(np.array([0]))[0] == 0  # pad reads as blank


def test_validity_agrees_with_set_definition():
    g = _solved_grid()
    assert _valid_by_sets(g) and sudoku.is_valid_solution(g) is True
    rng = np.random.default_rng(0)
    batch = np.stack([g] * 40)
    for i in range(1, 40):  # corrupt one cell per row (sometimes into a no-op)
        batch[i, rng.integers(81)] = rng.integers(0, 10)
    got = sudoku.is_valid_solution(batch)
    np.testing.assert_array_equal(got, [_valid_by_sets(b) for b in batch])
    assert got[0] and not got.all()


def test_givens_agree_and_units():
    s = _solved_grid()
    q = np.where(np.arange(81) % 3 == 0, 0, s)
    assert sudoku.givens_agree(q, s).tolist() == [True]
    q[1] = s[1] % 9 + 1
    assert sudoku.givens_agree(q, s).tolist() == [False]
    # 27 units of 9 cells; every cell in exactly one row, one column and one box.
    assert sudoku.UNITS.shape == (27, 9)
    np.testing.assert_array_equal(np.bincount(sudoku.UNITS.ravel()), np.full(81, 3))
    for cell in (0, 40, 80):
        for u in sudoku.UNITS_OF_CELL[cell]:
            assert cell in sudoku.UNITS[u]
