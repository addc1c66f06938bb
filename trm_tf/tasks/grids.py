"""Grid transforms shared by the tasks: dihedral symmetries, colour permutations, top-left crops.

The 8 dihedral ids follow the reference's `dihedral_transform` (0 identity, 1/2/3 rot90 by k=1/2/3
counter-clockwise, 4 left-right flip, 5 up-down flip, 6 transpose, 7 anti-transpose), so puzzle names and
`transform_id` features written by a builder mean the same transform everywhere. A colour map is a
permutation `color_map[old] = new` applied before the dihedral transform, as the reference augments.
"""

from __future__ import annotations

import numpy as np

NUM_DIHEDRAL = 8
# Index = transform id, value = id of its inverse (rot90 k=1 and k=3 swap; flips are involutions).
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
# Transforms that exchange rows and columns (a h x w grid becomes w x h).
TRANSPOSING_IDS = (1, 3, 6, 7)


def dihedral(grid: np.ndarray, trans_id: int) -> np.ndarray:
    """Applies one of the 8 dihedral transforms (the reference's `dihedral_transform`).

    Args:
      grid: 2-D array.
      trans_id: 0 identity, 1/2/3 rot90 by k=1/2/3 (counter-clockwise), 4 left-right flip, 5 up-down
        flip, 6 transpose, 7 anti-transpose (left-right flip of rot90 k=1).

    Returns:
      The transformed grid (a view when numpy allows it).
    """
    if trans_id == 0:
        return grid
    if trans_id in (1, 2, 3):
        return np.rot90(grid, k=trans_id)
    if trans_id == 4:
        return np.fliplr(grid)
    if trans_id == 5:
        return np.flipud(grid)
    if trans_id == 6:
        return grid.T
    if trans_id == 7:
        return np.fliplr(np.rot90(grid, k=1))
    raise ValueError(f"trans_id must be in 0..7, got {trans_id}")


def inverse_dihedral(grid: np.ndarray, trans_id: int) -> np.ndarray:
    """Undoes `dihedral(grid, trans_id)` (inverse table `DIHEDRAL_INVERSE`)."""
    return dihedral(grid, DIHEDRAL_INVERSE[trans_id])


def dihedral_rows(rows: np.ndarray, trans_id: int, size: int) -> np.ndarray:
    """Applies `dihedral` to every flattened `size` x `size` grid of a [N, size * size] array at once."""
    grids = rows.reshape(-1, size, size)
    out = np.stack([dihedral(g, trans_id) for g in grids]) if len(grids) else grids
    return np.ascontiguousarray(out).reshape(-1, size * size)


def inverse_color_map(color_map: np.ndarray) -> np.ndarray:
    """The permutation undoing `color_map` (`inverse[color_map[c]] == c`), as uint8."""
    return np.argsort(np.asarray(color_map)).astype(np.uint8)


def augment(grid: np.ndarray, trans_id: int, color_map: np.ndarray) -> np.ndarray:
    """The reference's augmentation of one grid: ``dihedral(color_map[grid], trans_id)``."""
    return np.ascontiguousarray(dihedral(np.asarray(color_map, np.uint8)[grid], trans_id))


def inverse_augment(grid: np.ndarray, trans_id: int, color_map: np.ndarray) -> np.ndarray:
    """Undoes `augment`: inverse dihedral, then the inverse colour permutation."""
    inverse_map = inverse_color_map(color_map)
    return np.ascontiguousarray(inverse_map[inverse_dihedral(np.asarray(grid), int(trans_id))])


def top_left_rectangle(inside: np.ndarray) -> tuple[int, int]:
    """(rows, cols) of the largest rectangle of True cells anchored at (0, 0) (the reference `_crop`).

    The width allowed for row r is the length of the leading True run of rows 0..r (a running minimum);
    the first row count reaching the largest area wins (the reference's strict ">"). A False (0, 0)
    gives (0, 0).

    Args:
      inside: bool [H, W].
    """
    h, w = inside.shape
    # Leading run length per row: index of the first False cell (w if none).
    run = np.where(inside.all(axis=1), w, np.argmin(inside, axis=1))
    width = np.minimum.accumulate(run)
    area = width * np.arange(1, h + 1)
    best = int(np.argmax(area))  # first maximum, like the reference's strict ">"
    if area[best] == 0:
        return 0, 0
    return best + 1, int(width[best])
