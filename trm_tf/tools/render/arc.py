"""ARC pictures (seq 900 = 30×30, 0 pad, 1 EOS, colour c -> c + 2): the 10 standard ARC colours.

Every grid is cropped to the bounding box of its non-pad tokens (`nonpad_box`), so the EOS border that
encodes the output shape stays visible (hatched); the input panel comes first, the target next when
labels are known; wrong cells carry a ×, changed cells a white outline with a black rim.
"""

from __future__ import annotations

import numpy as np

from trm_tf.tasks import arc as arc_task
from trm_tf.tools.render.common import (
    CHANGED,
    COLORS,
    STATUS_MASK,
    WRONG,
    Panel,
    legend_box,
    rgb,
)

SEQ_LEN = arc_task.SEQ_LEN
PANEL_IN = 2.1
GIF_PANEL_IN = 2.6
MAX_COLS = 8


def given_mask(inputs: np.ndarray) -> np.ndarray:
    """None: an ARC answer is a different grid from its input, so no cell is fixed by it."""
    return np.zeros(inputs.shape, bool)


# The standard ARC palette (as in the ARC testing interface): 0 black, 1 blue, 2 red, 3 green,
# 4 yellow, 5 grey, 6 magenta, 7 orange, 8 azure, 9 maroon.
ARC_COLORS = (
    "#000000",
    "#0074D9",
    "#FF4136",
    "#2ECC40",
    "#FFDC00",
    "#AAAAAA",
    "#F012BE",
    "#FF851B",
    "#7FDBFF",
    "#870C25",
)
ARC_COLOR_NAMES = (
    "0 black",
    "1 blue",
    "2 red",
    "3 green",
    "4 yellow",
    "5 grey",
    "6 magenta",
    "7 orange",
    "8 azure",
    "9 maroon",
)


def nonpad_box(
    *token_grids: np.ndarray, size: int = arc_task.GRID_SIZE
) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1), the smallest box holding every non-pad token of the given size×size canvases.

    This is the ARC view: the grid plus its EOS border, wherever the builder placed it on the canvas
    (translated train examples included). All pad -> the 1×1 box at the origin.
    """
    mask = np.zeros((size, size), bool)
    for g in token_grids:  # each [S] or [k, S]
        mask |= (np.asarray(g).reshape(-1, size, size) != 0).any(axis=0)
    if not mask.any():
        return 0, 1, 0, 1
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def dims_text(tokens, box) -> str:
    """'h×w grid' of the colour block at the box's top-left (the grid the EOS border encloses)."""
    r0, r1, c0, c1 = box
    t = np.asarray(tokens).reshape(arc_task.GRID_SIZE, arc_task.GRID_SIZE)[r0:r1, c0:c1]
    is_col = t >= arc_task.COLOR_OFFSET
    h = int(np.argmin(np.append(is_col[:, 0], False)))
    w = int(np.argmin(np.append(is_col[0, :], False)))
    return f"{h}×{w} grid"


def _fill(tokens2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cell colours, EOS mask); tokens outside the vocabulary (should not happen) show as pad."""
    fill = np.tile(rgb(COLORS["arc_pad"]), tokens2d.shape + (1,))
    for c, col in enumerate(ARC_COLORS):
        fill[tokens2d == c + arc_task.COLOR_OFFSET] = rgb(col)
    eos = tokens2d == arc_task.EOS_ID
    fill[eos] = rgb(COLORS["arc_eos"])
    return fill, eos


def grid_panel(tokens, status, box, title, subtitle) -> Panel:
    """One grid cropped to `box`, with the status marks when `status` is given."""
    r0, r1, c0, c1 = box
    t2 = np.asarray(tokens).reshape(arc_task.GRID_SIZE, arc_task.GRID_SIZE)[r0:r1, c0:c1]
    fill, eos = _fill(t2)
    p = Panel(fill=fill, title=title, subtitle=subtitle, hatch=eos, grid="fine")
    if status is not None:
        s2 = np.asarray(status).reshape(arc_task.GRID_SIZE, arc_task.GRID_SIZE)[r0:r1, c0:c1]
        p.outline = (s2 & CHANGED) != 0
        p.cross = (s2 & STATUS_MASK) == WRONG
    return p


def panel(inputs, pred, status, labels, title, subtitle, box=None) -> Panel:
    """One step's prediction, cropped to `box` (from `fixed_panels`: the same for every step)."""
    del inputs, labels
    return grid_panel(pred, status, box, title, subtitle)


def fixed_panels(inputs, shown_preds, labels) -> tuple[list[Panel], tuple[int, int, int, int]]:
    """(the input panel and, with labels, the target panel; the box every step is cropped to, which
    holds every shown prediction and the label)."""
    in_box = nonpad_box(inputs)
    fixed = [grid_panel(inputs, None, in_box, "input", dims_text(inputs, in_box))]
    box = nonpad_box(*shown_preds, *([labels] if labels is not None else []))
    if labels is not None:
        fixed.append(grid_panel(labels, None, box, "target", dims_text(labels, box)))
    return fixed, box


def legend(has_labels: bool) -> list:
    hs = [legend_box(col, name) for col, name in zip(ARC_COLORS, ARC_COLOR_NAMES)]
    hs += [
        legend_box(COLORS["arc_eos"], "EOS (shape)", hatch="////"),
        legend_box(COLORS["arc_pad"], "pad"),
    ]
    if has_labels:
        # The × marker is drawn as a patch in the legend; the text names it.
        hs.append(legend_box("#ffffff", "× wrong cell", edgecolor="black"))
    return hs + [
        legend_box("#ffffff", "changed (black-white rim)", edgecolor="black", lw=2.5),
    ]
