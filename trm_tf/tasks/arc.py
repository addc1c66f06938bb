"""ARC tokens on a 30x30 canvas: the encoding the builder writes, the evaluator crops and the renderer
draws.

Token encoding (the reference ARC builder): 0 = pad, 1 = EOS, colours 0..9 -> 2..11. A grid sits at a
top-left offset of the canvas; EOS marks the row just below and the column just right of the grid, only
inside the canvas and never on the diagonal corner, so the grid's shape can be read back by `crop`.
"""

from __future__ import annotations

import numpy as np

from trm_tf.tasks import grids

GRID_SIZE = 30
SEQ_LEN = GRID_SIZE * GRID_SIZE
VOCAB_SIZE = 12  # pad, EOS, colours 0..9
PAD_ID = 0
EOS_ID = 1
COLOR_OFFSET = 2
NUM_COLORS = 10
IDENTITY_COLOR_MAP = np.arange(NUM_COLORS, dtype=np.uint8)
# The builder writes the un-augmented test tasks with their solutions under this name next to
# `dataset_info.json`; the evaluator reads them back as its ground truth.
TEST_PUZZLES_FILE = "test_puzzles.json"


def encode_grid(grid: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Encodes one grid as 900 tokens (pad 0, EOS 1, colour c -> c + 2) at a top-left offset.

    Args:
      grid: [h, w] colours 0..9, h, w <= 30.
      offset: (pad_r, pad_c) with pad_r + h <= 30 and pad_c + w <= 30.

    Returns:
      uint8 [900], the row-major flattened canvas.
    """
    h, w = grid.shape
    r, c = offset
    canvas = np.zeros((GRID_SIZE, GRID_SIZE), np.uint8)
    canvas[r : r + h, c : c + w] = grid + COLOR_OFFSET
    # EOS only inside the canvas; the diagonal corner (r + h, c + w) is deliberately left as pad.
    if r + h < GRID_SIZE:
        canvas[r + h, c : c + w] = EOS_ID
    if c + w < GRID_SIZE:
        canvas[r : r + h, c + w] = EOS_ID
    return canvas.reshape(-1)


def is_color(tokens: np.ndarray) -> np.ndarray:
    """Whether each token is a colour token (2..11), same shape as `tokens`."""
    tokens = np.asarray(tokens)
    return (tokens >= COLOR_OFFSET) & (tokens < COLOR_OFFSET + NUM_COLORS)


def crop(tokens: np.ndarray) -> np.ndarray:
    """Largest top-left rectangle of colour tokens (2..11), as colours 0..9 (reference `_crop`).

    The width allowed for row r is the length of the leading colour run of rows 0..r (a running
    minimum); the first row count with the largest area wins. No colour at (0, 0) gives a 0x0 grid.

    Args:
      tokens: [900] (or [30, 30]) token ids.

    Returns:
      uint8 [h, w] grid of colours.
    """
    canvas = np.asarray(tokens).reshape(GRID_SIZE, GRID_SIZE)
    rows, cols = grids.top_left_rectangle(is_color(canvas))
    if rows == 0:
        return np.zeros((0, 0), np.uint8)
    return (canvas[:rows, :cols] - COLOR_OFFSET).astype(np.uint8)
