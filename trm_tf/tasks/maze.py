"""Maze-Hard tokens: the 30x30 charset encoding the builder writes and the renderer draws.

A 30x30 maze is a 900-char string over the charset "# SGo" ('#' wall, ' ' open, 'S' start, 'G' goal,
'o' path), mapped to ids 1..5 (0 = pad, vocab 6), as the reference maze builder does. The question has
no 'o'; the answer is the same maze with the path drawn in.
"""

from __future__ import annotations

import numpy as np

from trm_tf.tasks import grids

GRID_SIZE = 30
SEQ_LEN = GRID_SIZE * GRID_SIZE
CHARSET = "# SGo"
VOCAB_SIZE = len(CHARSET) + 1
PAD_ID = 0
WALL, OPEN, START, GOAL, PATH = (CHARSET.index(c) + 1 for c in CHARSET)

_CHAR_TO_ID = np.zeros(256, np.uint8)  # 0 marks a character outside the charset
_CHAR_TO_ID[np.frombuffer(CHARSET.encode(), np.uint8)] = np.arange(1, len(CHARSET) + 1)
_ID_TO_CHAR = np.frombuffer(("\0" + CHARSET).encode(), np.uint8)


def encode(text: str) -> np.ndarray:
    """Maps a 900-char maze string to uint8 ids 1..5 (0 for characters outside the charset)."""
    return _CHAR_TO_ID[np.frombuffer(text.encode("latin-1", errors="replace"), np.uint8)]


def decode(ids: np.ndarray) -> str:
    """Inverse of `encode` for valid ids."""
    return _ID_TO_CHAR[np.asarray(ids, np.uint8).reshape(-1)].tobytes().decode()


def dihedral_rows(rows: np.ndarray, trans_id: int) -> np.ndarray:
    """Applies the dihedral transform `trans_id` to every [900] row of a [N, 900] array at once."""
    return grids.dihedral_rows(rows, trans_id, GRID_SIZE)
