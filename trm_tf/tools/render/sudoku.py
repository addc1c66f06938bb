"""Sudoku pictures (seq 81, 0 pad, 1 blank, digit d -> d + 1): a 9×9 grid with box lines and digits.

Clues are bold on grey; predicted digits are green / red against the label (blue without one); a wrong
cell also shows the right digit small in its corner (the clue's digit when a clue was overwritten).
"""

from __future__ import annotations

import numpy as np

from trm_tf.tasks import sudoku as sudoku_task
from trm_tf.tools.render.common import (
    CHANGED,
    COLORS,
    GIVEN,
    PAD,
    STATUS_MASK,
    STATUS_NAMES,
    WRONG,
    Panel,
    changed_handle,
    legend_box,
    rgb,
)

SEQ_LEN = sudoku_task.SEQ_LEN
PANEL_IN = 2.1  # panel size in inches in the PNG
GIF_PANEL_IN = 3.0  # ... and in a GIF frame
MAX_COLS = 8  # panels per row before wrapping


def given_mask(inputs: np.ndarray) -> np.ndarray:
    """The clues: cells whose input is a digit (not pad, not blank)."""
    return inputs > sudoku_task.BLANK_TOKEN


def _cell_texts(r: int, c: int, tok: int, status: int, want: int) -> list:
    """The texts of one cell: its digit, plus the wanted digit small in the corner when it is wrong."""
    name = STATUS_NAMES[status]
    if status == GIVEN:
        return [(r, c, str(tok - 1), COLORS["digit_given"], True, 1.0, False)]
    shown = str(tok - 1) if 2 <= tok <= 10 else "·"
    colour = COLORS[f"digit_{name}"] if status != PAD else "#999999"
    texts = [(r, c, shown, colour, False, 1.0, False)]
    if status == WRONG and 2 <= want <= 10:
        texts.append((r, c, str(want - 1), COLORS["digit_hint"], False, 0.5, True))
    return texts


def panel(inputs, pred, status, labels, title, subtitle, box=None) -> Panel:
    """One step's grid (`box` is ARC's; unused here)."""
    del box
    st = status & STATUS_MASK
    fill = np.zeros((81, 3), np.float32)
    texts = []
    for i in range(81):
        s = int(st[i])
        fill[i] = rgb(COLORS[STATUS_NAMES[s]] if s != PAD else COLORS["pad"])
        want = int(labels[i]) if labels is not None else int(inputs[i])
        texts += _cell_texts(*divmod(i, 9), int(pred[i]), s, want)
    return Panel(
        fill=fill.reshape(9, 9, 3),
        title=title,
        subtitle=subtitle,
        texts=texts,
        outline=((status & CHANGED) != 0).reshape(9, 9),
        grid="sudoku",
    )


def fixed_panels(inputs, shown_preds, labels) -> tuple[list[Panel], None]:
    """Panels before the steps: none for Sudoku (the clues are in every step's grid)."""
    del inputs, shown_preds, labels
    return [], None


def legend(has_labels: bool) -> list:
    hs = [legend_box(COLORS["given"], "given (bold)")]
    if has_labels:
        hs += [
            legend_box(COLORS["correct"], "correct"),
            legend_box(COLORS["wrong"], "wrong (small: right digit)"),
        ]
    else:
        hs += [
            legend_box(COLORS["unknown"], "predicted (no label; blue)"),
            legend_box(COLORS["wrong"], "overwrites a given"),
        ]
    return hs + [changed_handle()]
