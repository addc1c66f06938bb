"""Sudoku tokens and validity: what the builder writes, the tools parse and the renderer draws.

Grids are arrays of shape [..., 81] in row-major order holding digits 1..9 and 0 for a blank. Tokens (what
the model sees) follow the reference builder: pad 0, blank 1, digit d -> d + 1, so `vocab_size = 11`.
"""

from __future__ import annotations

import numpy as np

SEQ_LEN = 81
VOCAB_SIZE = 11
PAD_ID = 0
BLANK_TOKEN = 1

# Unit (row, column, box) membership of every cell, used by the vectorised checks.
_CELLS = np.arange(81)
ROW_OF = _CELLS // 9
COL_OF = _CELLS % 9
BOX_OF = (ROW_OF // 3) * 3 + COL_OF // 3
UNITS = np.concatenate(
    [
        np.arange(81).reshape(9, 9),  # rows
        np.arange(81).reshape(9, 9).T,  # columns
        np.array(
            [
                [(b // 3) * 27 + (b % 3) * 3 + r * 9 + c for r in range(3) for c in range(3)]
                for b in range(9)
            ]
        ),  # boxes
    ]
)  # [27, 9]
UNITS_OF_CELL = np.stack([ROW_OF, 9 + COL_OF, 18 + BOX_OF], axis=1)  # [81, 3]


def encode(grids: np.ndarray) -> np.ndarray:
    """Maps digit grids to model tokens: blank (0) -> 1, digit d -> d + 1.

    Args:
      grids: integer array [..., 81] with 0 for blank and 1..9 for digits.

    Returns:
      uint8 array of the same shape with tokens in 1..10 (0 = pad is never produced).
    """
    return (np.asarray(grids, dtype=np.uint8) + 1).astype(np.uint8)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Inverse of `encode`: tokens 1..10 -> digits 0..9 (pad 0 also maps to blank 0)."""
    tokens = np.asarray(tokens)
    return np.where(tokens > 0, tokens - 1, 0).astype(np.uint8)


def is_valid_solution(grids: np.ndarray) -> np.ndarray:
    """Whether each complete grid is a valid Sudoku (every row, column and box holds 1..9).

    Args:
      grids: integer array [81] or [N, 81] of digits.

    Returns:
      bool scalar or bool array [N].
    """
    grids = np.asarray(grids)
    single = grids.ndim == 1
    g = grids.reshape(-1, 81).astype(np.int64)
    in_range = ((g >= 1) & (g <= 9)).all(axis=1)
    # One-hot of each unit's digits; valid iff every digit appears exactly once per unit.
    onehot = (g[:, UNITS][..., None] == np.arange(1, 10)).sum(axis=2)  # [N, 27, 9]
    ok = in_range & (onehot == 1).all(axis=(1, 2))
    return bool(ok[0]) if single else ok


def givens_agree(questions: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """Whether every given (non-zero) cell of each question equals the solution cell. Shape [N]."""
    q = np.asarray(questions).reshape(-1, 81)
    s = np.asarray(solutions).reshape(-1, 81)
    return ((q == 0) | (q == s)).all(axis=1)
