"""Maze pictures (seq 900 = 30×30, '#' 1, ' ' 2, 'S' 3, 'G' 4, 'o' 5): walls / open / start / goal with
the predicted path overlaid (green right, red wrong, pink for path cells the model missed)."""

from __future__ import annotations

import math

import numpy as np

from trm_tf.tasks import maze as maze_task
from trm_tf.tools.render.common import (
    CHANGED,
    COLORS,
    CORRECT,
    STATUS_MASK,
    UNKNOWN,
    WRONG,
    Panel,
    changed_handle,
    legend_box,
    rgb,
)

SEQ_LEN = maze_task.SEQ_LEN
PANEL_IN = 2.6
GIF_PANEL_IN = 3.6
MAX_COLS = 6

_TOKEN_COLORS = {
    maze_task.WALL: "wall",
    maze_task.OPEN: "open",
    maze_task.START: "start",
    maze_task.GOAL: "goal",
    maze_task.PATH: "path_correct",
    0: "pad",
}


def given_mask(inputs: np.ndarray) -> np.ndarray:
    """Walls, start and goal: every input cell that is neither open nor pad."""
    return (inputs != maze_task.OPEN) & (inputs != 0)


def fill(tokens: np.ndarray, status: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """[n, n, 3] cell colours of a maze prediction, the path coloured by its status."""
    n = int(round(math.sqrt(tokens.size)))
    out = np.tile(rgb(COLORS["open"]), (tokens.size, 1))
    for tok, name in _TOKEN_COLORS.items():
        out[tokens == tok] = rgb(COLORS[name])
    if status is not None:
        st = status & STATUS_MASK
        path = tokens == maze_task.PATH
        out[path & (st == CORRECT)] = rgb(COLORS["path_correct"])
        out[path & (st == UNKNOWN)] = rgb(COLORS["path_unknown"])
        out[(st == WRONG)] = rgb(COLORS["path_wrong"])
        if labels is not None:
            # A path cell the model left open: wrong, but drawn lighter so the red marks stay the
            # model's false positives (cells it put on the path, or givens it overwrote).
            missed = (
                (st == WRONG) & (tokens == maze_task.OPEN) & (np.asarray(labels) == maze_task.PATH)
            )
            out[missed] = rgb(COLORS["path_missed"])
    return out.reshape(n, n, 3)


def panel(inputs, pred, status, labels, title, subtitle, box=None) -> Panel:
    """One step's maze (`inputs` and `box` unused: the givens are in the prediction)."""
    del inputs, box
    n = int(round(math.sqrt(pred.size)))
    return Panel(
        fill=fill(pred, status, labels),
        title=title,
        subtitle=subtitle,
        outline=((status & CHANGED) != 0).reshape(n, n),
        grid="none",
    )


def fixed_panels(inputs, shown_preds, labels) -> tuple[list[Panel], None]:
    """Panels before the steps: none for mazes (walls, start and goal are in every step's picture)."""
    del inputs, shown_preds, labels
    return [], None


def legend(has_labels: bool) -> list:
    hs = [
        legend_box(COLORS["wall"], "wall"),
        legend_box(COLORS["open"], "open"),
        legend_box(COLORS["start"], "start"),
        legend_box(COLORS["goal"], "goal"),
    ]
    if has_labels:
        hs += [
            legend_box(COLORS["path_correct"], "path, correct"),
            legend_box(COLORS["path_wrong"], "wrong (bad path / overwrite)"),
            legend_box(COLORS["path_missed"], "path missed"),
        ]
    else:
        hs += [
            legend_box(COLORS["path_unknown"], "predicted path"),
            legend_box(COLORS["path_wrong"], "overwrites a given"),
        ]
    return hs + [changed_handle()]
