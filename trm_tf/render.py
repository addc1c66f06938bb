r"""Pictures of recursion: how a TRM's answer evolves over its supervision steps.

`render_steps` draws one puzzle's per-step predictions (as computed by `trm_tf.solve.run_steps`) as a PNG
with one panel per supervision step, titled ``step k · q_halt=+0.123 (halt|continue)``, and optionally an
animated GIF with one frame per step. Cells are coloured by their status (`cell_status`):

* given: fixed by the input and reproduced by the model (neutral grey);
* correct / wrong: predicted, equal / not equal to the label (green / red), when labels are known;
* unknown: predicted, no label to compare with (neutral, digits / path in blue);
* changed since the previous panel: outlined, whatever its correctness.

A given cell the model overwrites is wrong even without labels, since the input is ground truth there.

Per task (token encodings of docs/model.md#data-encodings):

* ``sudoku`` (seq 81, 0 pad, 1 blank, digit d -> d + 1): 9×9 grid with box lines and digits; a wrong
  cell also shows the right digit small in its corner.
* ``maze`` (seq 900 = 30×30, '#' 1, ' ' 2, 'S' 3, 'G' 4, 'o' 5): walls / open / start / goal with the
  predicted path overlaid (green right, red wrong, pink for path cells the model missed).
* ``arc`` (seq 900 = 30×30, 0 pad, 1 EOS, colour c -> c + 2): the 10 standard ARC colours, cropped to the
  bounding box of the non-pad tokens (so the EOS border that encodes the output shape stays visible,
  hatched); the input panel comes first, the target last when labels are known; wrong cells carry a ×.

Each panel also says how many cells are wrong and how many changed; the figure title gives the first step
whose q_halt is positive (where the reference's ACT loop would stop) and the final verdict.

Usage from Python (``res`` from `trm_tf.solve.run_steps`, puzzle i)::

    render_steps("sudoku", inputs[i], res["preds"][i], res["q_halt"][i], labels=None,
                 path="out.png", gif_path="out.gif")

or from a ``python -m trm_tf.solve ... --dump=steps.npz`` file::

    python -m trm_tf.render --dump=steps.npz --task=sudoku --out=out.png --gif=out.gif

Figures are drawn on the Agg canvas directly (no pyplot, no global backend switch); files are written
through tf.io.gfile, so gs:// paths work.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import posixpath
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from PIL import Image

TASKS = ("sudoku", "maze", "arc")

# Cell statuses returned by `cell_status`; CHANGED is a flag OR-ed onto one of the others.
GIVEN = 0  # fixed by the input and reproduced by the prediction
CORRECT = 1  # predicted, equals the label
WRONG = 2  # predicted, differs from the label (or overwrites a given)
UNKNOWN = 3  # predicted, no label to compare with
PAD = 4  # padding in the label (or, without labels, in the prediction): nothing to judge
CHANGED = 8  # flag: the prediction differs from the previous panel's
STATUS_MASK = 7

STATUS_NAMES = {GIVEN: "given", CORRECT: "correct", WRONG: "wrong", UNKNOWN: "unknown", PAD: "pad"}

# Token ids (docs/model.md#data-encodings).
SUDOKU_BLANK = 1
MAZE_WALL, MAZE_OPEN, MAZE_START, MAZE_GOAL, MAZE_PATH = 1, 2, 3, 4, 5
ARC_EOS = 1
ARC_COLOR_OFFSET = 2

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

# Status colours for Sudoku and Maze (light fills so the digits stay readable).
_C = {
    "given": "#d9d9d9",
    "correct": "#a8dfa0",
    "wrong": "#f08a8a",
    "unknown": "#ffffff",
    "pad": "#f7f7f7",
    "changed": "#ff7f00",
    "changed_arc": "#ffffff",
    "digit_given": "#000000",
    "digit_correct": "#135e13",
    "digit_wrong": "#8b0000",
    "digit_unknown": "#1f4fa8",
    "digit_hint": "#3a3a3a",
    "wall": "#2f2f2f",
    "open": "#ffffff",
    "start": "#1565c0",
    "goal": "#8e24aa",
    "path_correct": "#2ca02c",
    "path_wrong": "#e31a1c",
    "path_missed": "#fbb4c4",
    "path_unknown": "#20b2aa",
    "arc_pad": "#ffffff",
    "arc_eos": "#d0d0d0",
    "arc_grid": "#555555",
}

_DPI = 100
_GIF_DPI = 80
_FRAME_MS = 700
_LAST_FRAME_MS = 2500


def _rgb(color: str) -> np.ndarray:
    c = color.lstrip("#")
    return np.array([int(c[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


# ------------------------------------------------------------------------------------------------
# Pure logic (tested directly).


def _given_mask(task: str, inputs: np.ndarray) -> np.ndarray:
    """Cells the input fixes: Sudoku clues, maze walls / start / goal; ARC has none (in != out)."""
    if task == "sudoku":
        return inputs >= 2
    if task == "maze":
        return (inputs != MAZE_OPEN) & (inputs != 0)
    if task == "arc":
        return np.zeros(inputs.shape, bool)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def cell_status(
    inputs: np.ndarray, preds: np.ndarray, labels: np.ndarray | None = None, task: str = "sudoku"
) -> np.ndarray:
    """Status of every cell at every step, as ints (`GIVEN`/`CORRECT`/`WRONG`/`UNKNOWN`/`PAD`, | `CHANGED`).

    Rules, per step k and cell i:

    * a given cell (Sudoku clue; maze wall, start or goal; ARC has none) is GIVEN when the prediction
      reproduces the input token and WRONG otherwise (the input is ground truth there, labels or not);
    * otherwise, with labels: PAD when label and prediction are both pad (0), else CORRECT when the
      prediction equals the label and WRONG when it does not (so a colour predicted where the ARC label is
      pad counts as wrong: it changes the cropped answer);
    * otherwise, without labels: PAD when the prediction is pad, else UNKNOWN;
    * CHANGED is OR-ed in when preds[k, i] != preds[k - 1, i]; step 0 never has it.

    Args:
      inputs: [S] input token ids.
      preds: [steps, S] (or [S]) predicted token ids.
      labels: [S] label token ids, or None when the answer is unknown.
      task: "sudoku", "maze" or "arc" (decides which cells the input fixes).

    Returns:
      int32 array shaped like `preds` ([steps, S]).
    """
    inputs = np.asarray(inputs).reshape(-1)
    preds = np.asarray(preds)
    squeeze = preds.ndim == 1
    preds = preds.reshape(-1, inputs.size) if not squeeze else preds[None]
    given = _given_mask(task, inputs)[None]
    if labels is None:
        free = np.where(preds == 0, PAD, UNKNOWN)
    else:
        labels = np.asarray(labels).reshape(1, -1)
        free = np.where(preds == labels, np.where(labels == 0, PAD, CORRECT), WRONG)
    status = np.where(given, np.where(preds == inputs[None], GIVEN, WRONG), free).astype(np.int32)
    changed = np.zeros(preds.shape, bool)
    changed[1:] = preds[1:] != preds[:-1]
    status |= np.where(changed, CHANGED, 0).astype(np.int32)
    return status[0] if squeeze else status


def select_steps(num_steps: int, max_steps: int | None = None) -> list[int]:
    """Indices (0-based) of the steps to draw: all, or `max_steps` evenly spaced ones, first and last kept.

    The last step is the answer that is evaluated, the first shows where the recursion starts.
    """
    if num_steps <= 0:
        raise ValueError("need at least one step")
    if max_steps is None or max_steps >= num_steps:
        return list(range(num_steps))
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if max_steps == 1:
        return [num_steps - 1]
    idx = np.round(np.linspace(0, num_steps - 1, max_steps)).astype(int)
    return sorted(set(idx.tolist()))


def nonpad_box(*token_grids: np.ndarray, size: int = 30) -> tuple[int, int, int, int]:
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


def halt_word(q_halt: float) -> str:
    """'halt' when q_halt > 0 (the reference halts on q_halt > 0 at evaluation), else 'continue'."""
    return "halt" if q_halt > 0 else "continue"


def step_title(step: int, q_halt: float) -> str:
    """``step k · q_halt=+0.123 (halt)`` with k 1-based."""
    return f"step {step} · q_halt={q_halt:+.3f} ({halt_word(q_halt)})"


# ------------------------------------------------------------------------------------------------
# Panels: a task-independent description of one grid picture.


@dataclasses.dataclass
class _Panel:
    fill: np.ndarray  # [H, W, 3] cell colours
    title: str
    subtitle: str = ""
    texts: list = dataclasses.field(
        default_factory=list
    )  # (r, c, text, colour, bold, scale, corner)
    outline: np.ndarray | None = None  # [H, W] bool: changed cells
    cross: np.ndarray | None = None  # [H, W] bool: wrong ARC cells
    hatch: np.ndarray | None = None  # [H, W] bool: ARC EOS cells
    grid: str = "none"  # "sudoku" | "fine" | "none"
    bold_title: bool = False


def _sudoku_panel(inputs, pred, status, labels, title, subtitle) -> _Panel:
    st = status & STATUS_MASK
    fill = np.zeros((81, 3), np.float32)
    texts = []
    for i in range(81):
        s = int(st[i])
        name = STATUS_NAMES[s]
        fill[i] = _rgb(_C[name] if s != PAD else _C["pad"])
        r, c = divmod(i, 9)
        tok = int(pred[i])
        if s == GIVEN:
            texts.append((r, c, str(tok - 1), _C["digit_given"], True, 1.0, False))
            continue
        shown = str(tok - 1) if 2 <= tok <= 10 else "·"
        texts.append(
            (r, c, shown, _C[f"digit_{name}"] if s != PAD else "#999999", False, 1.0, False)
        )
        if s == WRONG:
            want = int(labels[i]) if labels is not None else int(inputs[i])
            if 2 <= want <= 10:
                texts.append((r, c, str(want - 1), _C["digit_hint"], False, 0.5, True))
    return _Panel(
        fill=fill.reshape(9, 9, 3),
        title=title,
        subtitle=subtitle,
        texts=texts,
        outline=((status & CHANGED) != 0).reshape(9, 9),
        grid="sudoku",
    )


def _maze_fill(tokens: np.ndarray, status: np.ndarray | None, labels: np.ndarray | None):
    n = int(round(math.sqrt(tokens.size)))
    fill = np.tile(_rgb(_C["open"]), (tokens.size, 1))
    base = {
        MAZE_WALL: "wall",
        MAZE_OPEN: "open",
        MAZE_START: "start",
        MAZE_GOAL: "goal",
        MAZE_PATH: "path_correct",
        0: "pad",
    }
    for tok, name in base.items():
        fill[tokens == tok] = _rgb(_C[name])
    if status is not None:
        st = status & STATUS_MASK
        path = tokens == MAZE_PATH
        fill[path & (st == CORRECT)] = _rgb(_C["path_correct"])
        fill[path & (st == UNKNOWN)] = _rgb(_C["path_unknown"])
        fill[(st == WRONG)] = _rgb(_C["path_wrong"])
        if labels is not None:
            # A path cell the model left open: wrong, but drawn lighter so the red marks stay the
            # model's false positives (cells it put on the path, or givens it overwrote).
            missed = (st == WRONG) & (tokens == MAZE_OPEN) & (np.asarray(labels) == MAZE_PATH)
            fill[missed] = _rgb(_C["path_missed"])
    return fill.reshape(n, n, 3)


def _maze_panel(pred, status, labels, title, subtitle) -> _Panel:
    n = int(round(math.sqrt(pred.size)))
    return _Panel(
        fill=_maze_fill(pred, status, labels),
        title=title,
        subtitle=subtitle,
        outline=((status & CHANGED) != 0).reshape(n, n),
        grid="none",
    )


def _arc_fill(tokens2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fill = np.tile(_rgb(_C["arc_pad"]), tokens2d.shape + (1,))
    for c, col in enumerate(ARC_COLORS):
        fill[tokens2d == c + ARC_COLOR_OFFSET] = _rgb(col)
    eos = tokens2d == ARC_EOS
    fill[eos] = _rgb(_C["arc_eos"])
    # Tokens outside the vocabulary (should not happen) show as pad.
    return fill, eos


def _arc_panel(tokens, status, box, title, subtitle, bold=False) -> _Panel:
    r0, r1, c0, c1 = box
    t2 = np.asarray(tokens).reshape(30, 30)[r0:r1, c0:c1]
    fill, eos = _arc_fill(t2)
    panel = _Panel(
        fill=fill, title=title, subtitle=subtitle, hatch=eos, grid="fine", bold_title=bold
    )
    if status is not None:
        s2 = np.asarray(status).reshape(30, 30)[r0:r1, c0:c1]
        panel.outline = (s2 & CHANGED) != 0
        panel.cross = (s2 & STATUS_MASK) == WRONG
    return panel


# ------------------------------------------------------------------------------------------------
# Drawing.


def _draw_panel(ax, p: _Panel, cell_pt: float) -> None:
    """Draws one panel; `cell_pt` is the on-page cell size in points (sets font and line sizes)."""
    h, w = p.fill.shape[:2]
    ax.imshow(p.fill, interpolation="nearest", extent=(0, w, h, 0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(1.2)
    if p.grid == "sudoku":
        for k in range(1, 9):
            lw = 1.8 if k % 3 == 0 else 0.4
            ax.axhline(k, color="black", lw=lw)
            ax.axvline(k, color="black", lw=lw)
    elif p.grid == "fine" and max(h, w) <= 30:
        ax.hlines(np.arange(1, h), 0, w, colors=_C["arc_grid"], lw=0.35)
        ax.vlines(np.arange(1, w), 0, h, colors=_C["arc_grid"], lw=0.35)
    if p.hatch is not None and p.hatch.any():
        rr, cc = np.nonzero(p.hatch)
        ax.add_collection(
            PatchCollection(
                [Rectangle((c, r), 1, 1) for r, c in zip(rr, cc)],
                facecolor="none",
                edgecolor="#7a7a7a",
                hatch="////",
                lw=0,
            )
        )
    for r, c, text, color, bold, scale, corner in p.texts:
        if corner:
            # Inside the changed-cell outline, which would otherwise cover it.
            ax.text(
                c + 0.86,
                r + 0.13,
                text,
                ha="right",
                va="top",
                color=color,
                fontsize=cell_pt * 0.62 * scale,
                zorder=4,
            )
        else:
            # A digit with a corner hint moves left to make room for it.
            x = c + (0.42 if any(t[5] < 1 and t[0] == r and t[1] == c for t in p.texts) else 0.5)
            ax.text(
                x,
                r + 0.54,
                text,
                ha="center",
                va="center",
                color=color,
                fontsize=cell_pt * 0.62 * scale,
                fontweight="bold" if bold else "normal",
                zorder=4,
            )
    if p.cross is not None and p.cross.any():
        rr, cc = np.nonzero(p.cross)
        ax.scatter(
            cc + 0.5,
            rr + 0.5,
            marker="x",
            s=(cell_pt * 0.55) ** 2,
            c="white",
            linewidths=max(0.8, cell_pt * 0.09),
            zorder=5,
            path_effects=[
                patheffects.withStroke(linewidth=max(2.0, cell_pt * 0.2), foreground="black")
            ],
        )
    if p.outline is not None and p.outline.any():
        rr, cc = np.nonzero(p.outline)
        lw = float(np.clip(cell_pt * 0.12, 1.0, 2.4))
        inset = min(0.5, lw / cell_pt / 2 + 0.02)  # keep the line inside its own cell
        rects = PatchCollection(
            [
                Rectangle((c + inset, r + inset), 1 - 2 * inset, 1 - 2 * inset)
                for r, c in zip(rr, cc)
            ],
            facecolor="none",
            edgecolor=_C["changed_arc" if p.grid == "fine" else "changed"],
            lw=lw,
            zorder=6,
        )
        if p.grid == "fine":
            # ARC cells can be any of 10 colours (orange included): white with a black rim shows on all.
            rects.set_path_effects([patheffects.withStroke(linewidth=lw * 2.2, foreground="black")])
        ax.add_collection(rects)
    title = p.title + (f"\n{p.subtitle}" if p.subtitle else "")
    ax.set_title(title, fontsize=7.5, fontweight="bold" if p.bold_title else "normal", pad=3)


def _legend_handles(task: str, has_labels: bool) -> list:
    def box(color, label, **kw):
        return Patch(facecolor=color, edgecolor=kw.pop("edgecolor", "#666666"), label=label, **kw)

    changed = Patch(
        facecolor="none", edgecolor=_C["changed"], lw=2, label="changed since prev. panel"
    )
    if task == "arc":
        changed = Patch(
            facecolor="#ffffff", edgecolor="black", lw=2.5, label="changed (black-white rim)"
        )
    if task == "sudoku":
        hs = [box(_C["given"], "given (bold)")]
        if has_labels:
            hs += [box(_C["correct"], "correct"), box(_C["wrong"], "wrong (small: right digit)")]
        else:
            hs += [
                box(_C["unknown"], "predicted (no label; blue)"),
                box(_C["wrong"], "overwrites a given"),
            ]
        return hs + [changed]
    if task == "maze":
        hs = [
            box(_C["wall"], "wall"),
            box(_C["open"], "open"),
            box(_C["start"], "start"),
            box(_C["goal"], "goal"),
        ]
        if has_labels:
            hs += [
                box(_C["path_correct"], "path, correct"),
                box(_C["path_wrong"], "wrong (bad path / overwrite)"),
                box(_C["path_missed"], "path missed"),
            ]
        else:
            hs += [
                box(_C["path_unknown"], "predicted path"),
                box(_C["path_wrong"], "overwrites a given"),
            ]
        return hs + [changed]
    hs = [box(col, name) for col, name in zip(ARC_COLORS, ARC_COLOR_NAMES)]
    hs += [box(_C["arc_eos"], "EOS (shape)", hatch="////"), box(_C["arc_pad"], "pad")]
    if has_labels:
        hs.append(
            # The marker in the legend is drawn as a patch; the text names it.
            Patch(facecolor="#ffffff", edgecolor="black", label="× wrong cell")
        )
    return hs + [changed]


def _layout(n: int, max_cols: int) -> tuple[int, int]:
    """(rows, cols) for n panels: as few rows as `max_cols` allows, then the rows balanced."""
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def _figure(
    panels: Sequence[_Panel],
    task: str,
    has_labels: bool,
    suptitle: str,
    dpi: int,
    panel_in: float,
    ncols: int | None = None,
) -> bytes:
    """Draws the panels in a wrapped grid with a title and a legend; returns PNG bytes."""
    n = len(panels)
    rows, cols = _layout(n, 6 if task == "maze" else 8) if ncols is None else (1, ncols)
    legend = _legend_handles(task, has_labels)
    leg_cols = min(len(legend), max(3, int(cols * panel_in / 1.9)))
    leg_rows = math.ceil(len(legend) / leg_cols)
    width = max(cols * (panel_in + 0.15) + 0.2, 4.2)
    height = rows * (panel_in + 0.45) + 0.35 + 0.22 * leg_rows
    fig = Figure(figsize=(width, height), layout="constrained", dpi=dpi)
    FigureCanvasAgg(fig)
    for i, p in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        cell_pt = panel_in * 72.0 / max(p.fill.shape[:2])
        _draw_panel(ax, p, cell_pt)
    fig.suptitle(suptitle, fontsize=10)
    fig.legend(
        handles=legend,
        loc="outside lower center",
        ncols=leg_cols,
        fontsize=7.5,
        frameon=False,
        handlelength=1.4,
        columnspacing=1.0,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _write(path: str, data: bytes) -> None:
    parent = posixpath.dirname(path)
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def _gif_bytes(frames: Sequence[bytes]) -> bytes:
    """PNG frames -> an animated GIF that loops, last frame held longer; one shared palette keeps it small."""
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in frames]
    size = images[0].size
    images = [im if im.size == size else im.resize(size) for im in images]
    # Build one palette from a strip of all frames so colours are stable (no flicker) across frames.
    strip = Image.new("RGB", (size[0], size[1] * len(images)))
    for k, im in enumerate(images):
        strip.paste(im, (0, k * size[1]))
    palette = strip.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    quant = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [_FRAME_MS] * (len(quant) - 1) + [_LAST_FRAME_MS]
    buf = io.BytesIO()
    quant[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=quant[1:],
        duration=durations,
        loop=0,
        optimize=False,
        disposal=1,
    )
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Public entry points.


def _panels_for(task, inputs, preds, q_halt, labels, steps, status):
    """(input/target panels, one panel per shown step, suptitle)."""
    first_halt = next((k for k in range(len(q_halt)) if q_halt[k] > 0), None)
    final = status[-1] & STATUS_MASK
    n_wrong_final = int((final == WRONG).sum())
    if labels is not None:
        verdict = "solved" if n_wrong_final == 0 else f"{n_wrong_final} wrong cells"
    else:
        verdict = "no labels" + (f"; {n_wrong_final} given(s) overwritten" if n_wrong_final else "")
    halt_txt = (
        f"first q_halt>0 at step {first_halt + 1}" if first_halt is not None else "never halts"
    )
    suptitle = f"{task}: {len(q_halt)} supervision steps, {halt_txt}; last step: {verdict}"

    fixed, shown = [], []
    if task == "arc":
        in_box = nonpad_box(inputs)
        fixed.append(_arc_panel(inputs, None, in_box, "input", _dims_text(inputs, in_box)))
        grids = [preds[k] for k in steps] + ([labels] if labels is not None else [])
        box = nonpad_box(*grids)
        if labels is not None:
            fixed.append(_arc_panel(labels, None, box, "target", _dims_text(labels, box)))
    prev = None
    for k in steps:
        # CHANGED relative to the previous *shown* panel, so the picture is self-consistent when
        # max_steps skips steps.
        pair = preds[[k]] if prev is None else preds[[prev, k]]
        st = cell_status(inputs, pair, labels, task)[-1]
        n_wrong = int(((st & STATUS_MASK) == WRONG).sum())
        n_changed = int(((st & CHANGED) != 0).sum())
        sub = (
            f"{n_wrong} wrong · {n_changed} changed"
            if labels is not None
            else f"{n_changed} changed"
        )
        if labels is None and n_wrong:
            sub = f"{n_wrong} given(s) overwritten · " + sub
        title = step_title(k + 1, float(q_halt[k]))
        if task == "sudoku":
            panel = _sudoku_panel(inputs, preds[k], st, labels, title, sub)
        elif task == "maze":
            panel = _maze_panel(preds[k], st, labels, title, sub)
        else:
            panel = _arc_panel(preds[k], st, box, title, sub)
        panel.bold_title = k == first_halt
        shown.append(panel)
        prev = k
    return fixed, shown, suptitle


def _dims_text(tokens, box) -> str:
    """'h×w grid' of the colour block at the box's top-left (the grid the EOS border encloses)."""
    r0, r1, c0, c1 = box
    t = np.asarray(tokens).reshape(30, 30)[r0:r1, c0:c1]
    is_col = t >= ARC_COLOR_OFFSET
    h = int(np.argmin(np.append(is_col[:, 0], False)))
    w = int(np.argmin(np.append(is_col[0, :], False)))
    return f"{h}×{w} grid"


def render_steps(
    task: str,
    inputs: np.ndarray,
    preds: np.ndarray,
    q_halt: np.ndarray,
    labels: np.ndarray | None = None,
    path: str = "out.png",
    max_steps: int | None = None,
    gif_path: str | None = None,
) -> list[str]:
    """Draws one puzzle's predictions across supervision steps as a PNG (and optionally a GIF).

    Args:
      task: "sudoku" (seq 81), "maze" (seq 900 = 30×30) or "arc" (seq 900 = 30×30).
      inputs: [S] input token ids.
      preds: [steps, S] predicted token ids per supervision step (argmax of the logits).
      q_halt: [steps] halting logits per step.
      labels: [S] label token ids when the answer is known, else None.
      path: PNG to write (local or gs://): one panel per shown step (ARC: input panel first, target
        panel next when labels are known), wrapped into rows.
      max_steps: draw at most this many steps, evenly spaced, first and last kept (`select_steps`);
        "changed" then compares with the previous drawn step.
      gif_path: when set, also writes an animated GIF there, one frame per shown step.

    Returns:
      The paths written: [path] or [path, gif_path].
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    inputs = np.asarray(inputs).reshape(-1).astype(np.int64)
    preds = np.asarray(preds).astype(np.int64)
    if preds.ndim == 1:
        preds = preds[None]
    q_halt = np.asarray(q_halt, np.float64).reshape(-1)
    seq = {"sudoku": 81, "maze": 900, "arc": 900}[task]
    if inputs.size != seq or preds.shape[1:] != (seq,) or q_halt.size != preds.shape[0]:
        raise ValueError(
            f"{task}: want inputs [{seq}], preds [steps, {seq}], q_halt [steps]; got "
            f"{inputs.shape}, {preds.shape}, {q_halt.shape}"
        )
    if labels is not None:
        # Training labels may carry the ignore id (-100) on pad cells: show them as pad.
        labels = np.maximum(np.asarray(labels).reshape(-1).astype(np.int64), 0)
        if labels.size != seq:
            raise ValueError(f"{task}: labels must have {seq} tokens, got {labels.size}")
    steps = select_steps(preds.shape[0], max_steps)
    status = cell_status(inputs, preds[steps], labels, task)
    fixed, shown, suptitle = _panels_for(task, inputs, preds, q_halt, labels, steps, status)

    panel_in = {"sudoku": 2.1, "maze": 2.6, "arc": 2.1}[task]
    _write(path, _figure(fixed + shown, task, labels is not None, suptitle, _DPI, panel_in))
    written = [path]
    if gif_path:
        frames = [
            _figure(
                fixed + [p],
                task,
                labels is not None,
                suptitle.split(";")[0],
                _GIF_DPI,
                {"sudoku": 3.0, "maze": 3.6, "arc": 2.6}[task],
                ncols=len(fixed) + 1,
            )
            for p in shown
        ]
        _write(gif_path, _gif_bytes(frames))
        written.append(gif_path)
    return written


def render_batch(
    task: str,
    inputs: np.ndarray,
    results: dict,
    labels: np.ndarray | None = None,
    path: str = "out.png",
    max_steps: int | None = None,
    gif_path: str | None = None,
    max_puzzles: int = 8,
) -> list[str]:
    """`render_steps` for the first `max_puzzles` puzzles of a `trm_tf.solve.run_steps` result.

    One puzzle writes `path` (and `gif_path`) as given; several write `out_0.png`, `out_1.png`, ...

    Args:
      task: "sudoku", "maze" or "arc".
      inputs: [N, S] token ids.
      results: dict with "preds" [N, steps, S] and "q_halt" [N, steps] (as `run_steps` returns).
      labels: [N, S] or None.
      path, max_steps, gif_path: as in `render_steps`.
      max_puzzles: draw at most this many puzzles.

    Returns:
      Every path written.
    """
    inputs = np.asarray(inputs)
    n = min(len(inputs), max_puzzles)

    def numbered(p: str | None, i: int) -> str | None:
        if p is None or n == 1:
            return p
        stem, dot, ext = p.rpartition(".")
        return f"{stem}_{i}.{ext}" if dot else f"{p}_{i}"

    out = []
    for i in range(n):
        out += render_steps(
            task,
            inputs[i],
            results["preds"][i],
            results["q_halt"][i],
            None if labels is None else np.asarray(labels)[i],
            path=numbered(path, i),
            max_steps=max_steps,
            gif_path=numbered(gif_path, i),
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: renders a `python -m trm_tf.solve --dump=...` file."""
    ap = argparse.ArgumentParser(prog="python -m trm_tf.render", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--dump", required=True, help=".npz written by solve --dump (inputs, preds, q_halt)"
    )
    ap.add_argument("--task", default="sudoku", choices=TASKS)
    ap.add_argument("--out", default="out.png")
    ap.add_argument("--gif", default=None)
    ap.add_argument("--max_steps", type=int, default=None)
    ap.add_argument("--max_puzzles", type=int, default=8)
    args = ap.parse_args(argv)
    with tf.io.gfile.GFile(args.dump, "rb") as f:
        data = dict(np.load(io.BytesIO(f.read())))
    paths = render_batch(
        args.task,
        data["inputs"],
        data,
        data.get("labels"),
        path=args.out,
        max_steps=args.max_steps,
        gif_path=args.gif,
        max_puzzles=args.max_puzzles,
    )
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
