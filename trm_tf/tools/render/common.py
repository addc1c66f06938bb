"""What every task's picture shares: cell statuses, step selection, panels, drawing, PNG / GIF files.

Cells are coloured by their status (`cell_status`):

* given: fixed by the input and reproduced by the model (neutral grey);
* correct / wrong: predicted, equal / not equal to the label (green / red), when labels are known;
* unknown: predicted, no label to compare with (neutral, digits / path in blue);
* changed since the previous panel: outlined, whatever its correctness.

A given cell the model overwrites is wrong even without labels, since the input is ground truth there.

A task module (one per entry of `trm_tf.tools.render.TASKS`) says which cells its input fixes
(`given_mask`), turns one step's prediction into a `Panel` (cell colours, texts, marks) and names its legend
entries; `figure` draws panels on the Agg canvas directly (no pyplot, no
global backend switch) and `write` stores files through tf.io.gfile, so gs:// paths work.
"""

from __future__ import annotations

import dataclasses
import io
import math
import posixpath
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from PIL import Image

# Cell statuses returned by `cell_status`; CHANGED is a flag OR-ed onto one of the others.
GIVEN = 0  # fixed by the input and reproduced by the prediction
CORRECT = 1  # predicted, equals the label
WRONG = 2  # predicted, differs from the label (or overwrites a given)
UNKNOWN = 3  # predicted, no label to compare with
PAD = 4  # padding in the label (or, without labels, in the prediction): nothing to judge
CHANGED = 8  # flag: the prediction differs from the previous panel's
STATUS_MASK = 7

STATUS_NAMES = {GIVEN: "given", CORRECT: "correct", WRONG: "wrong", UNKNOWN: "unknown", PAD: "pad"}

# Status colours for Sudoku and Maze (light fills so the digits stay readable) and ARC's marks.
COLORS = {
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

DPI = 100
GIF_DPI = 80
_FRAME_MS = 700
_LAST_FRAME_MS = 2500


def rgb(color: str) -> np.ndarray:
    """'#rrggbb' -> float RGB in [0, 1]."""
    c = color.lstrip("#")
    return np.array([int(c[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


# ------------------------------------------------------------------------------------------------
# Pure logic (tested directly).


def cell_status(
    inputs: np.ndarray, preds: np.ndarray, labels: np.ndarray | None, given: np.ndarray
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
      given: [S] bool, the cells the input fixes (the task module's `given_mask(inputs)`).

    Returns:
      int32 array shaped like `preds` ([steps, S]).
    """
    inputs = np.asarray(inputs).reshape(-1)
    preds = np.asarray(preds)
    squeeze = preds.ndim == 1
    preds = preds.reshape(-1, inputs.size) if not squeeze else preds[None]
    given = np.asarray(given, bool).reshape(1, -1)
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


def halt_word(q_halt: float, halt: bool | None = None) -> str:
    """'halt' or 'continue': `halt` when given (the model's own Q test, e.g. q_halt > q_continue for
    HRM), else q_halt > 0 (TRM's test, the one the reference's ACT loop applies)."""
    return "halt" if (q_halt > 0 if halt is None else halt) else "continue"


def step_title(step: int, q_halt: float, halt: bool | None = None) -> str:
    """``step k · q_halt=+0.123 (halt)`` with k 1-based (`halt` as in `halt_word`)."""
    return f"step {step} · q_halt={q_halt:+.3f} ({halt_word(q_halt, halt)})"


# ------------------------------------------------------------------------------------------------
# Panels: a task-independent description of one grid picture.


@dataclasses.dataclass
class Panel:
    fill: np.ndarray  # [H, W, 3] cell colours
    title: str
    subtitle: str = ""
    # (r, c, text, colour, bold, scale, corner): a cell's text; corner texts are small hints.
    texts: list = dataclasses.field(default_factory=list)
    outline: np.ndarray | None = None  # [H, W] bool: changed cells
    cross: np.ndarray | None = None  # [H, W] bool: wrong ARC cells
    hatch: np.ndarray | None = None  # [H, W] bool: ARC EOS cells
    grid: str = "none"  # "sudoku" | "fine" | "none"
    bold_title: bool = False


# ------------------------------------------------------------------------------------------------
# Drawing.


def _draw_grid(ax, p: Panel) -> None:
    h, w = p.fill.shape[:2]
    if p.grid == "sudoku":
        for k in range(1, 9):
            lw = 1.8 if k % 3 == 0 else 0.4
            ax.axhline(k, color="black", lw=lw)
            ax.axvline(k, color="black", lw=lw)
    elif p.grid == "fine" and max(h, w) <= 30:
        ax.hlines(np.arange(1, h), 0, w, colors=COLORS["arc_grid"], lw=0.35)
        ax.vlines(np.arange(1, w), 0, h, colors=COLORS["arc_grid"], lw=0.35)
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


def _draw_texts(ax, p: Panel, cell_pt: float) -> None:
    for r, c, text, color, bold, scale, corner in p.texts:
        size = cell_pt * 0.62 * scale
        if corner:
            # Inside the changed-cell outline, which would otherwise cover it.
            ax.text(
                c + 0.86, r + 0.13, text, ha="right", va="top", color=color, fontsize=size, zorder=4
            )
            continue
        # A digit with a corner hint moves left to make room for it.
        x = c + (0.42 if any(t[5] < 1 and t[0] == r and t[1] == c for t in p.texts) else 0.5)
        weight = "bold" if bold else "normal"
        ax.text(
            x,
            r + 0.54,
            text,
            ha="center",
            va="center",
            color=color,
            fontsize=size,
            fontweight=weight,
            zorder=4,
        )


def _draw_marks(ax, p: Panel, cell_pt: float) -> None:
    """The × of wrong ARC cells and the outline of changed cells."""
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
            edgecolor=COLORS["changed_arc" if p.grid == "fine" else "changed"],
            lw=lw,
            zorder=6,
        )
        if p.grid == "fine":
            # ARC cells can be any of 10 colours (orange included): white with a black rim shows on all.
            rects.set_path_effects([patheffects.withStroke(linewidth=lw * 2.2, foreground="black")])
        ax.add_collection(rects)


def draw_panel(ax, p: Panel, cell_pt: float) -> None:
    """Draws one panel; `cell_pt` is the on-page cell size in points (sets font and line sizes)."""
    h, w = p.fill.shape[:2]
    ax.imshow(p.fill, interpolation="nearest", extent=(0, w, h, 0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(1.2)
    _draw_grid(ax, p)
    _draw_texts(ax, p, cell_pt)
    _draw_marks(ax, p, cell_pt)
    title = p.title + (f"\n{p.subtitle}" if p.subtitle else "")
    ax.set_title(title, fontsize=7.5, fontweight="bold" if p.bold_title else "normal", pad=3)


def legend_box(color: str, label: str, **kw) -> Patch:
    """A legend entry: a filled swatch."""
    return Patch(facecolor=color, edgecolor=kw.pop("edgecolor", "#666666"), label=label, **kw)


def changed_handle() -> Patch:
    """The legend entry of the changed-cell outline (Sudoku and Maze)."""
    return Patch(
        facecolor="none", edgecolor=COLORS["changed"], lw=2, label="changed since prev. panel"
    )


def _layout(n: int, max_cols: int) -> tuple[int, int]:
    """(rows, cols) for n panels: as few rows as `max_cols` allows, then the rows balanced."""
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def figure(
    panels: Sequence[Panel],
    legend: list,
    suptitle: str,
    dpi: int,
    panel_in: float,
    max_cols: int = 8,
    ncols: int | None = None,
) -> bytes:
    """Draws the panels in a grid wrapped at `max_cols` (or one row of `ncols`) with a title and the
    legend entries `legend`; returns PNG bytes."""
    n = len(panels)
    rows, cols = _layout(n, max_cols) if ncols is None else (1, ncols)
    leg_cols = min(len(legend), max(3, int(cols * panel_in / 1.9)))
    leg_rows = math.ceil(len(legend) / leg_cols)
    width = max(cols * (panel_in + 0.15) + 0.2, 4.2)
    height = rows * (panel_in + 0.45) + 0.35 + 0.22 * leg_rows
    fig = Figure(figsize=(width, height), layout="constrained", dpi=dpi)
    FigureCanvasAgg(fig)
    for i, p in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        cell_pt = panel_in * 72.0 / max(p.fill.shape[:2])
        draw_panel(ax, p, cell_pt)
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


# ------------------------------------------------------------------------------------------------
# Files.


def write(path: str, data: bytes) -> None:
    """Writes bytes through tf.io.gfile, creating the parent directory."""
    parent = posixpath.dirname(path)
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def gif_bytes(frames: Sequence[bytes]) -> bytes:
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
