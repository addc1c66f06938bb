"""trm_tf.tools.render: the cell-status logic by hand, the PNG / GIF files on small real grids, the CLI."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trm_tf.tools import render
from trm_tf.tools.render import arc as render_arc
from trm_tf.tools.render import common
from trm_tf.tools.render.__main__ import main as render_main
from trm_tf.tools.render.common import CHANGED, CORRECT, GIVEN, PAD, UNKNOWN, WRONG

# A real puzzle and its (unique) solution.
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
SUDOKU_X = np.array([1 if c == "." else int(c) + 1 for c in PUZZLE], np.int32)
SUDOKU_Y = np.array([int(c) + 1 for c in SOLUTION], np.int32)


def _wrong_digit(tok: int) -> int:
    return (tok - 2 + 1) % 9 + 2  # next digit, cyclically: always a different digit token


def _sudoku_preds(wrong_per_step: list[list[int]]) -> np.ndarray:
    preds = np.tile(SUDOKU_Y, (len(wrong_per_step), 1))
    for k, cells in enumerate(wrong_per_step):
        for i in cells:
            preds[k, i] = _wrong_digit(SUDOKU_Y[i])
    return preds


def _arc_canvas(grid: np.ndarray, offset=(0, 0)) -> np.ndarray:
    """The builder's encoding: colours + 2 on a 30x30 canvas, EOS below and right (no corner)."""
    canvas = np.zeros((30, 30), np.int32)
    h, w = grid.shape
    r, c = offset
    canvas[r : r + h, c : c + w] = grid + 2
    canvas[r + h, c : c + w] = 1
    canvas[r : r + h, c + w] = 1
    return canvas.ravel()


def _maze():
    """A 30x30 maze: border walls, one inner wall, S at (2, 2), G at (2, 8); the path runs along row 2."""
    grid = np.full((30, 30), 2, np.int32)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 1
    grid[5, 1:20] = 1
    grid[2, 2], grid[2, 8] = 3, 4
    label = grid.copy()
    label[2, 3:8] = 5
    return grid.ravel(), label.ravel()


def _png(path: str) -> Image.Image:
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    Image.open(io.BytesIO(data)).verify()  # raises on a truncated / corrupt file
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# ------------------------------------------------------------------------------------------------
# Pure logic.


def test_sudoku_solution_is_valid():
    g = SUDOKU_Y.reshape(9, 9) - 1
    assert all(sorted(row) == list(range(1, 10)) for row in list(g) + list(g.T))
    assert np.all(SUDOKU_X[SUDOKU_X > 1] == SUDOKU_Y[SUDOKU_X > 1])


def test_cell_status_sudoku_by_hand():
    # Cell 0 is a clue (5), cells 2 and 3 are blanks (solution 4 and 6).
    assert SUDOKU_X[0] == 6 and SUDOKU_X[2] == 1 and SUDOKU_X[3] == 1
    preds = np.tile(SUDOKU_Y, (3, 1))
    preds[0, 2] = 9  # step 1: blank 2 wrong (8 instead of 4)
    preds[1, 0] = 7  # step 2: clue overwritten (6 instead of 5); blank 2 fixed
    preds[2, 3] = 2  # step 3: blank 3 wrong; clue restored
    st = render.task_status("sudoku", SUDOKU_X, preds, SUDOKU_Y)
    assert st.shape == (3, 81) and st.dtype == np.int32
    np.testing.assert_array_equal(
        st[:, [0, 2, 3]],
        [
            [GIVEN, WRONG, CORRECT],
            [WRONG | CHANGED, CORRECT | CHANGED, CORRECT],
            [GIVEN | CHANGED, CORRECT, WRONG | CHANGED],
        ],
    )
    # Everything else: clues GIVEN, blanks CORRECT, no change.
    rest = np.setdiff1d(np.arange(81), [0, 2, 3])
    want = np.where(SUDOKU_X[rest] > 1, GIVEN, CORRECT)
    np.testing.assert_array_equal(st[:, rest], np.tile(want, (3, 1)))
    # Without labels: blanks are UNKNOWN, an overwritten clue is still WRONG (the input is truth).
    st = render.task_status("sudoku", SUDOKU_X, preds, None)
    np.testing.assert_array_equal(
        st[:, [0, 2, 3]],
        [
            [GIVEN, UNKNOWN, UNKNOWN],
            [WRONG | CHANGED, UNKNOWN | CHANGED, UNKNOWN],
            [GIVEN | CHANGED, UNKNOWN, UNKNOWN | CHANGED],
        ],
    )
    # One step as a 1-D array.
    np.testing.assert_array_equal(
        render.task_status("sudoku", SUDOKU_X, preds[0], SUDOKU_Y)[[0, 2]], [0, 2]
    )


def test_cell_status_maze_by_hand():
    x, y = _maze()
    idx = lambda r, c: r * 30 + c  # noqa: E731
    pred = x.copy()
    pred[[idx(2, 3), idx(2, 4)]] = 5  # right path cells
    pred[idx(3, 3)] = 5  # path where the label is open
    pred[idx(0, 0)] = 5  # path over a wall
    st = render.task_status("maze", x, pred[None], y)[0]
    assert st[idx(2, 2)] == GIVEN and st[idx(2, 8)] == GIVEN and st[idx(5, 5)] == GIVEN
    assert st[idx(2, 3)] == CORRECT and st[idx(2, 4)] == CORRECT
    assert st[idx(2, 5)] == WRONG  # missed path cell (left open)
    assert st[idx(3, 3)] == WRONG and st[idx(0, 0)] == WRONG
    assert st[idx(10, 10)] == CORRECT  # open, stays open
    assert int((st == WRONG).sum()) == 3 + 2  # 3 missed (2, 5..7) + 2 false
    st = render.task_status("maze", x, pred[None], None)[0]
    assert st[idx(0, 0)] == WRONG and st[idx(2, 3)] == UNKNOWN and st[idx(10, 10)] == UNKNOWN


def test_cell_status_arc_by_hand():
    y = _arc_canvas(np.array([[1, 2], [3, 4]]))
    pred = y.copy()
    pred[0] = 9  # colour 7 instead of 1
    pred[2] = 0  # EOS of row 0 predicted as pad
    pred[31 * 5] = 4  # a colour where the label is pad
    st = render.task_status("arc", np.zeros(900, np.int32), pred[None], y)[0]
    assert st[0] == WRONG and st[2] == WRONG and st[155] == WRONG
    assert st[1] == CORRECT and st[30] == CORRECT and st[60] == CORRECT  # colour, colour, EOS
    assert st[899] == PAD
    assert int((st == CORRECT).sum()) == 4 - 1 + 4 - 1  # 3 colours + 3 EOS cells
    # ARC has no givens: even where input == pred the status comes from the label.
    assert not np.any(st == GIVEN)


def test_select_steps():
    assert common.select_steps(16) == list(range(16))
    assert common.select_steps(16, 4) == [0, 5, 10, 15]
    assert common.select_steps(16, 1) == [15]
    assert common.select_steps(3, 5) == [0, 1, 2]
    with pytest.raises(ValueError):
        common.select_steps(0)


def test_nonpad_box_and_titles():
    y = _arc_canvas(np.ones((3, 4), np.int64), offset=(2, 3))
    assert render_arc.nonpad_box(y) == (
        2,
        6,
        3,
        8,
    )  # grid rows 2..4 + EOS row 5; cols 3..6 + EOS col 7
    assert render_arc.nonpad_box(y, _arc_canvas(np.ones((1, 1), np.int64))) == (0, 6, 0, 8)
    assert render_arc.nonpad_box(np.zeros(900)) == (0, 1, 0, 1)
    assert common.step_title(3, 0.1234) == "step 3 · q_halt=+0.123 (halt)"
    assert common.step_title(1, -2.0) == "step 1 · q_halt=-2.000 (continue)"
    assert common.step_title(2, 0.0).endswith("(continue)")  # the reference halts on q > 0
    # HRM / transformer: the model's own test (q_halt > q_continue) decides, not the sign
    assert common.step_title(2, -1.0, halt=True).endswith("(halt)")
    assert common.step_title(2, 1.0, halt=False).endswith("(continue)")


# ------------------------------------------------------------------------------------------------
# Files.


def test_render_sudoku_png_and_gif(tmp_path):
    preds = _sudoku_preds([[2, 3, 5, 40, 80], [2, 40], []])
    q = np.array([-1.5, -0.2, 0.7])
    png, gif = str(tmp_path / "s.png"), str(tmp_path / "s.gif")
    assert render.render_steps("sudoku", SUDOKU_X, preds, q, SUDOKU_Y, png, gif_path=gif) == [
        png,
        gif,
    ]
    im = _png(png)
    assert im.format == "PNG" and im.width > 3 * 150 and im.height > 150
    g = Image.open(gif)
    assert g.format == "GIF" and g.n_frames == 3 and g.info["loop"] == 0
    # The wrong-cell colour covers more of the picture when more cells are wrong (the legend swatch
    # is in both).
    wrong_rgb = tuple(int(common.COLORS["wrong"][i : i + 2], 16) for i in (1, 3, 5))

    def wrong_pixels(path):
        a = np.asarray(_png(path).convert("RGB"))
        return int(np.all(a == wrong_rgb, axis=-1).sum())

    solved = str(tmp_path / "solved.png")
    render.render_steps("sudoku", SUDOKU_X, _sudoku_preds([[], [], []]), q, SUDOKU_Y, solved)
    per_cell = (2.1 * 100 / 9 * 0.6) ** 2  # at least the cell interior left by digit and lines
    assert wrong_pixels(png) - wrong_pixels(solved) > 7 * per_cell
    # max_steps keeps first and last; the GIF follows.
    out = render.render_steps(
        "sudoku", SUDOKU_X, preds, q, None, str(tmp_path / "n.png"), 2, str(tmp_path / "n.gif")
    )
    assert Image.open(out[1]).n_frames == 2


def test_render_maze_and_arc(tmp_path):
    x, y = _maze()
    preds = np.stack([x, np.where(np.arange(900) == 63, 5, x), y])
    png = render.render_steps(
        "maze", x, preds, np.array([-1.0, 0.5, 2.0]), y, str(tmp_path / "m.png")
    )
    assert _png(png[0]).width > 3 * 200

    gi = np.array([[0, 1, 2], [3, 4, 5]])
    go = np.array([[6, 7], [8, 9], [0, 1]])
    ax, ay = _arc_canvas(gi, offset=(1, 2)), _arc_canvas(go)
    preds = np.stack([_arc_canvas(go[:2]), ay, ay])
    paths = render.render_steps(
        "arc",
        ax,
        preds,
        np.array([-0.3, 0.2, 0.9]),
        ay,
        str(tmp_path / "a.png"),
        gif_path=str(tmp_path / "a.gif"),
    )
    assert _png(paths[0]).format == "PNG"
    g = Image.open(paths[1])
    assert g.n_frames == 3
    # Labels with the ignore id (-100) on pad cells render like pad labels.
    render.render_steps(
        "arc", ax, preds[:1], [0.1], np.where(ay == 0, -100, ay), str(tmp_path / "b.png")
    )
    with pytest.raises(ValueError):
        render.render_steps("arc", ax, preds[:, :81], [0.0] * 3, None, str(tmp_path / "c.png"))
    with pytest.raises(ValueError):
        render.render_steps("go", ax, preds, [0.0] * 3)


def test_render_batch_gfile_and_cli(tmp_path):
    # ram:// goes through the same tf.io.gfile code paths as gs://.
    root = f"ram://render_test_{os.getpid()}"
    inputs = np.stack([SUDOKU_X, SUDOKU_X])
    res = {"preds": np.stack([_sudoku_preds([[2], []])] * 2), "q_halt": np.array([[-1.0, 1.0]] * 2)}
    paths = render.render_batch(
        "sudoku", inputs, res, None, f"{root}/r.png", gif_path=f"{root}/r.gif"
    )
    assert paths == [f"{root}/r_0.png", f"{root}/r_0.gif", f"{root}/r_1.png", f"{root}/r_1.gif"]
    assert _png(paths[0]).format == "PNG"
    with tf.io.gfile.GFile(paths[1], "rb") as f:
        assert Image.open(io.BytesIO(f.read())).n_frames == 2

    # The CLI reads a `solve --dump` file.
    dump = tmp_path / "steps.npz"
    np.savez(dump, inputs=inputs[:1], preds=res["preds"][:1], q_halt=res["q_halt"][:1])
    out = str(tmp_path / "cli.png")
    assert render_main(["--dump", str(dump), "--task", "sudoku", "--out", out]) == 0
    assert _png(out).format == "PNG"


def test_halts_override_the_sign_of_q_halt(tmp_path):
    preds = _sudoku_preds([[0, 1], [0], []])
    q_halt = np.array([-3.0, -2.0, -1.0])  # never positive
    out = str(tmp_path / "h.png")
    render.render_steps("sudoku", SUDOKU_X, preds, q_halt, SUDOKU_Y, path=out)
    render.render_steps(
        "sudoku", SUDOKU_X, preds, q_halt, SUDOKU_Y, path=out, halts=[False, True, True]
    )
    status = render.task_status("sudoku", SUDOKU_X, preds, SUDOKU_Y)[-1]
    assert "never halts" in render._suptitle("sudoku", q_halt > 0, status, True)
    assert "first halt at step 2" in render._suptitle("sudoku", [False, True, True], status, True)
    with pytest.raises(ValueError, match="one flag per step"):
        render.render_steps("sudoku", SUDOKU_X, preds, q_halt, path=out, halts=[True])


def test_tasks_table_is_the_only_list_of_tasks(tmp_path, monkeypatch, capsys):
    # A task is its module plus one row of render.TASKS: the checks, the drawing and the CLI's --task
    # choices all read the table (here a second name for the Sudoku module).
    monkeypatch.setitem(render.TASKS, "sudoku_copy", render.TASKS["sudoku"])
    preds = _sudoku_preds([[2], []])
    out = render.render_steps(
        "sudoku_copy", SUDOKU_X, preds, [0.5, 1.0], SUDOKU_Y, str(tmp_path / "a.png")
    )
    assert (
        _png(out[0]).size
        == _png(
            render.render_steps(
                "sudoku", SUDOKU_X, preds, [0.5, 1.0], SUDOKU_Y, str(tmp_path / "b.png")
            )[0]
        ).size
    )
    st = render.task_status("sudoku_copy", SUDOKU_X, preds, SUDOKU_Y)
    np.testing.assert_array_equal(st, render.task_status("sudoku", SUDOKU_X, preds, SUDOKU_Y))
    dump = tmp_path / "steps.npz"
    np.savez(dump, inputs=SUDOKU_X[None], preds=preds[None], q_halt=np.array([[0.5, 1.0]]))
    assert render_main([f"--dump={dump}", "--task=sudoku_copy", f"--out={tmp_path}/c.png"]) == 0
    monkeypatch.delitem(render.TASKS, "sudoku_copy")
    with pytest.raises(SystemExit):  # argparse: not a choice any more
        render_main([f"--dump={dump}", "--task=sudoku_copy", f"--out={tmp_path}/d.png"])
    assert "invalid choice" in capsys.readouterr().err
