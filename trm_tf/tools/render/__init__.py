r"""Pictures of recursion: how a TRM's answer evolves over its supervision steps.

`render_steps` draws one puzzle's per-step predictions (as computed by `trm_tf.tools.solve.run_steps`)
as a PNG with one panel per supervision step, titled ``step k · q_halt=+0.123 (halt|continue)``, and
optionally an animated GIF with one frame per step. Cells are coloured by their status (`cell_status`:
given, correct, wrong, unknown without labels; changed cells outlined; `common` says more). Per task
(token encodings of `trm_tf.tasks`, as the builders write them):

* ``sudoku`` (seq 81): 9×9 grid with box lines and digits (`sudoku`);
* ``maze`` (seq 900 = 30×30): walls / open / start / goal with the predicted path overlaid (`maze`);
* ``arc`` (seq 900 = 30×30): the 10 ARC colours, cropped to the non-pad box, input and target panels
  first (`arc`).

The tasks are the table `TASKS` (name -> module). Each panel also says how many cells are wrong and how
many changed; the figure title gives the first step
whose Q test passes (`halts`; by default q_halt > 0, where the reference's ACT loop stops a TRM) and the
final verdict.

Usage from Python (``res`` from `trm_tf.tools.solve.run_steps`, puzzle i)::

    render_steps("sudoku", inputs[i], res["preds"][i], res["q_halt"][i], labels=None,
                 path="out.png", gif_path="out.gif")

or from a ``python -m trm_tf.tools.solve ... --dump=steps.npz`` file::

    python -m trm_tf.tools.render --dump=steps.npz --task=sudoku --out=out.png --gif=out.gif
"""

from __future__ import annotations

import numpy as np

from trm_tf.tools.render import arc, common, maze, sudoku
from trm_tf.tools.render.common import (
    CHANGED,
    STATUS_MASK,
    WRONG,
    cell_status,
    select_steps,
    step_title,
)

# The one table of drawable tasks: `--task` name -> its module (SEQ_LEN, PANEL_IN, GIF_PANEL_IN, MAX_COLS,
# given_mask, panel, fixed_panels, legend). A new task adds its module and one line here.
TASKS = {"sudoku": sudoku, "maze": maze, "arc": arc}


def task_status(
    task: str, inputs: np.ndarray, preds: np.ndarray, labels: np.ndarray | None = None
) -> np.ndarray:
    """`common.cell_status` with the cells the task's input fixes (`TASKS[task].given_mask`)."""
    inputs = np.asarray(inputs).reshape(-1)
    return cell_status(inputs, preds, labels, TASKS[task].given_mask(inputs))


def _suptitle(task: str, halts: np.ndarray, final_status: np.ndarray, has_labels: bool) -> str:
    first_halt = next((k for k in range(len(halts)) if halts[k]), None)
    n_wrong_final = int(((final_status & STATUS_MASK) == WRONG).sum())
    if has_labels:
        verdict = "solved" if n_wrong_final == 0 else f"{n_wrong_final} wrong cells"
    else:
        verdict = "no labels" + (f"; {n_wrong_final} given(s) overwritten" if n_wrong_final else "")
    halt_txt = f"first halt at step {first_halt + 1}" if first_halt is not None else "never halts"
    return f"{task}: {len(halts)} supervision steps, {halt_txt}; last step: {verdict}"


def _subtitle(st: np.ndarray, has_labels: bool) -> str:
    """'3 wrong · 2 changed' (with labels) or '2 changed', after the overwritten givens if any."""
    n_wrong = int(((st & STATUS_MASK) == WRONG).sum())
    n_changed = int(((st & CHANGED) != 0).sum())
    sub = f"{n_wrong} wrong · {n_changed} changed" if has_labels else f"{n_changed} changed"
    if not has_labels and n_wrong:
        sub = f"{n_wrong} given(s) overwritten · " + sub
    return sub


def _panels_for(task, inputs, preds, q_halt, halts, labels, steps):
    """(input/target panels, one panel per shown step)."""
    mod = TASKS[task]
    first_halt = next((k for k in range(len(halts)) if halts[k]), None)
    fixed, box = mod.fixed_panels(inputs, preds[steps], labels)
    shown, prev = [], None
    for k in steps:
        # CHANGED relative to the previous *shown* panel, so the picture is self-consistent when
        # max_steps skips steps.
        pair = preds[[k]] if prev is None else preds[[prev, k]]
        st = task_status(task, inputs, pair, labels)[-1]
        title = step_title(k + 1, float(q_halt[k]), bool(halts[k]))
        panel = mod.panel(
            inputs, preds[k], st, labels, title, _subtitle(st, labels is not None), box
        )
        panel.bold_title = k == first_halt
        shown.append(panel)
        prev = k
    return fixed, shown


def _checked(task, inputs, preds, q_halt, labels):
    """The arguments of `render_steps` as int64 / float64 arrays of the task's shapes."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    inputs = np.asarray(inputs).reshape(-1).astype(np.int64)
    preds = np.asarray(preds).astype(np.int64)
    if preds.ndim == 1:
        preds = preds[None]
    q_halt = np.asarray(q_halt, np.float64).reshape(-1)
    seq = TASKS[task].SEQ_LEN
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
    return inputs, preds, q_halt, labels


def render_steps(
    task: str,
    inputs: np.ndarray,
    preds: np.ndarray,
    q_halt: np.ndarray,
    labels: np.ndarray | None = None,
    path: str = "out.png",
    max_steps: int | None = None,
    gif_path: str | None = None,
    halts: np.ndarray | None = None,
) -> list[str]:
    """Draws one puzzle's predictions across supervision steps as a PNG (and optionally a GIF).

    Args:
      task: a key of `TASKS`: "sudoku" (seq 81), "maze" (seq 900 = 30×30) or "arc" (seq 900 = 30×30).
      inputs: [S] input token ids.
      preds: [steps, S] predicted token ids per supervision step (argmax of the logits).
      q_halt: [steps] halting logits per step.
      labels: [S] label token ids when the answer is known, else None.
      path: PNG to write (local or gs://): one panel per shown step (ARC: input panel first, target
        panel next when labels are known), wrapped into rows.
      max_steps: draw at most this many steps, evenly spaced, first and last kept (`select_steps`);
        "changed" then compares with the previous drawn step.
      gif_path: when set, also writes an animated GIF there, one frame per shown step.
      halts: [steps] whether the model's Q test passed at each step (`solve`'s "halt": q_halt >
        q_continue for HRM and the transformer baseline); default q_halt > 0, TRM's test.

    Returns:
      The paths written: [path] or [path, gif_path].
    """
    inputs, preds, q_halt, labels = _checked(task, inputs, preds, q_halt, labels)
    halts = q_halt > 0 if halts is None else np.asarray(halts, bool).reshape(-1)
    if halts.shape != q_halt.shape:
        raise ValueError(f"{task}: halts must have one flag per step, got {halts.shape}")
    mod = TASKS[task]
    steps = select_steps(preds.shape[0], max_steps)
    status = task_status(task, inputs, preds[steps], labels)
    suptitle = _suptitle(task, halts, status[-1], labels is not None)
    fixed, shown = _panels_for(task, inputs, preds, q_halt, halts, labels, steps)
    legend = mod.legend(labels is not None)
    png = common.figure(fixed + shown, legend, suptitle, common.DPI, mod.PANEL_IN, mod.MAX_COLS)
    common.write(path, png)
    written = [path]
    if gif_path:
        frames = [
            common.figure(
                fixed + [p],
                legend,
                suptitle.split(";")[0],
                common.GIF_DPI,
                mod.GIF_PANEL_IN,
                ncols=len(fixed) + 1,
            )
            for p in shown
        ]
        common.write(gif_path, common.gif_bytes(frames))
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
    """`render_steps` for the first `max_puzzles` puzzles of a `trm_tf.tools.solve.run_steps` result.

    One puzzle writes `path` (and `gif_path`) as given; several write `out_0.png`, `out_1.png`, ...

    Args:
      task: a key of `TASKS`.
      inputs: [N, S] token ids.
      results: dict with "preds" [N, steps, S] and "q_halt" [N, steps], and optionally "halt"
        [N, steps] (as `trm_tf.tools.solve` computes them).
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
            halts=results["halt"][i] if "halt" in results else None,
        )
    return out
