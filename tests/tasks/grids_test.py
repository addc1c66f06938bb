"""trm_tf.tasks.grids against index formulas written out by hand and brute-force searches."""

import numpy as np
import pytest

from trm_tf.tasks import grids

H, W = 3, 5


def _expected(g: np.ndarray, t: int) -> np.ndarray:
    """Each transform as an explicit per-cell index map (rot90 is counter-clockwise, as numpy's)."""
    h, w = g.shape
    if t in (0, 4, 5):
        out = np.empty((h, w), g.dtype)
        for i in range(h):
            for j in range(w):
                out[i, j] = {0: g[i, j], 4: g[i, w - 1 - j], 5: g[h - 1 - i, j]}[t]
        return out
    if t == 2:
        return np.array([[g[h - 1 - i, w - 1 - j] for j in range(w)] for i in range(h)])
    # Transforms that swap the axes: output is w x h.
    cell = {
        1: lambda i, j: g[j, w - 1 - i],
        3: lambda i, j: g[h - 1 - j, i],
        6: lambda i, j: g[j, i],
        7: lambda i, j: g[h - 1 - j, w - 1 - i],
    }[t]
    return np.array([[cell(i, j) for j in range(h)] for i in range(w)])


@pytest.mark.parametrize("t", range(8))
def test_dihedral_matches_index_maps_and_inverse_undoes_it(t):
    g = np.arange(H * W).reshape(H, W)
    out = grids.dihedral(g, t)
    np.testing.assert_array_equal(out, _expected(g, t))
    assert (out.shape != g.shape) == (t in grids.TRANSPOSING_IDS)
    np.testing.assert_array_equal(grids.inverse_dihedral(out, t), g)
    # The inverse table really is the group inverse: composing gives the identity on a square grid too.
    sq = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(
        grids.dihedral(grids.dihedral(sq, t), grids.DIHEDRAL_INVERSE[t]), sq
    )


def test_eight_distinct_transforms_and_bad_id():
    g = np.arange(16).reshape(4, 4)
    assert len({grids.dihedral(g, t).tobytes() for t in range(8)}) == grids.NUM_DIHEDRAL == 8
    with pytest.raises(ValueError, match="0..7"):
        grids.dihedral(g, 8)


def test_dihedral_rows_transforms_each_row():
    rows = np.random.default_rng(0).integers(0, 6, (3, 16)).astype(np.uint8)
    for t in range(8):
        out = grids.dihedral_rows(rows, t, 4)
        assert out.shape == (3, 16) and out.flags["C_CONTIGUOUS"]
        for i in range(3):
            np.testing.assert_array_equal(out[i], _expected(rows[i].reshape(4, 4), t).reshape(-1))
    assert grids.dihedral_rows(np.zeros((0, 16), np.uint8), 3, 4).shape == (0, 16)


def test_colour_permutation_and_its_inverse():
    rng = np.random.default_rng(1)
    cmap = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
    inv = grids.inverse_color_map(cmap)
    assert inv.dtype == np.uint8
    np.testing.assert_array_equal(inv[cmap], np.arange(10))
    np.testing.assert_array_equal(cmap[inv], np.arange(10))
    g = rng.integers(0, 10, (H, W)).astype(np.uint8)
    for t in range(8):
        aug = grids.augment(g, t, cmap)
        want = _expected(np.array([[cmap[v] for v in row] for row in g]), t)
        np.testing.assert_array_equal(aug, want)
        np.testing.assert_array_equal(grids.inverse_augment(aug, np.int32(t), cmap), g)


def _brute_rectangle(inside: np.ndarray) -> tuple[int, int]:
    """Largest all-True rectangle anchored at (0, 0); among equal areas the one with fewest rows."""
    best = (0, 0, 0)  # area, rows, cols
    for r in range(1, inside.shape[0] + 1):
        for c in range(1, inside.shape[1] + 1):
            if inside[:r, :c].all() and r * c > best[0]:
                best = (r * c, r, c)
    return best[1], best[2]


def test_top_left_rectangle_equals_brute_force():
    rng = np.random.default_rng(2)
    for k in range(300):
        h, w = rng.integers(1, 8, 2)
        inside = rng.random((h, w)) < (0.6 + 0.4 * (k % 3 == 0))
        got = grids.top_left_rectangle(inside)
        assert got == _brute_rectangle(inside), inside
    # Ties: 1x4 and 2x2 both have area 4 -> fewest rows wins.
    tie = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    assert grids.top_left_rectangle(tie) == (1, 4)
    assert grids.top_left_rectangle(np.zeros((3, 3), bool)) == (0, 0)
