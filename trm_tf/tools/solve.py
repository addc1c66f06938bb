r"""Solves Sudoku puzzles with a trained TRM and shows how the answer evolves over supervision steps.

  python -m trm_tf.tools.solve --checkpoint=/tmp/trm_quickstart \
      --puzzle=53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79
  python -m trm_tf.tools.solve --config=configs/e1_1_baseline.py --checkpoint=step_65104.pt \
      --puzzles=FILE --dump=steps.npz

`--checkpoint` is a run directory (its newest checkpoint; EMA weights unless --noema), a checkpoint prefix
(`.../ckpt-1500`), or a reference PyTorch state_dict (`.pt` with torch installed, `.npz`, `.safetensors`).
A run directory's config.json says how the model was built; `--config` overrides it and is required for a
state_dict or a checkpoint outside a run directory. A checkpoint that lacks a variable of that model (a
config that does not match it) stops with one line naming what is missing.
Puzzles: 81 characters each, `.` or `0` for blanks, one per line in --puzzles. The model runs in evaluation
mode: all N_sup supervision steps from a fresh carry, as the reference evaluates.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from trm_tf import act  # noqa: E402
from trm_tf.tasks import sudoku  # noqa: E402
from trm_tf.tools import restore  # noqa: E402
from trm_tf.tools.restore import load_model  # noqa: E402, F401  (part of this module's interface)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config the model was trained with (default: the run directory's config.json)."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Run dir, checkpoint prefix or reference state_dict."
)
_PUZZLE = flags.DEFINE_string("puzzle", None, "One puzzle string (81 chars, '.' or '0' = blank).")
_PUZZLES = flags.DEFINE_string("puzzles", None, "File with one puzzle per line.")
_DUMP = flags.DEFINE_string("dump", None, "Write per-step logits/preds/q values to this .npz.")
_EMA = flags.DEFINE_bool(
    "ema", True, "Use the EMA weights of a training checkpoint (as evaluation does)."
)
_STEPS = flags.DEFINE_integer("steps", -1, "Supervision steps (-1: the config's halt_max_steps).")
_RENDER = flags.DEFINE_string("render", None, "Draw each puzzle's grid at every step to this PNG.")
_GIF = flags.DEFINE_string("gif", None, "Also write an animated GIF (one frame per step).")
_SOLUTIONS = flags.DEFINE_string(
    "solutions",
    None,
    "Optional file of known solutions (one per line) to colour right/wrong cells.",
)


class PuzzleFormatError(ValueError):
    """A puzzle string is not 81 characters of digits / blanks."""


def parse_puzzle(text: str, where: str = "puzzle") -> np.ndarray:
    """81 chars ('.' or '0' blank, '1'-'9') -> token ids (blank 1, digit d -> d + 1), as the builder."""
    s = text.strip()
    if len(s) != 81:
        raise PuzzleFormatError(f"{where}: expected 81 characters, got {len(s)}")
    bad = sorted({c for c in s if c not in ".0123456789"})
    if bad:
        raise PuzzleFormatError(
            f"{where}: invalid characters {''.join(bad)!r} (use 1-9 and '.' or '0')"
        )
    digits = np.array([0 if c in ".0" else int(c) for c in s], np.uint8)
    return sudoku.encode(digits).astype(np.int32)


def read_puzzles(path: str) -> np.ndarray:
    with tf.io.gfile.GFile(path) as f:
        lines = [(i + 1, line) for i, line in enumerate(f) if line.strip()]
    if not lines:
        raise PuzzleFormatError(f"{path}: no puzzles")
    return np.stack([parse_puzzle(line, f"{path}:{n}") for n, line in lines])


def grid_string(tokens: np.ndarray, givens: np.ndarray | None = None) -> str:
    """A 9x9 grid with box separators; digits the model filled in are shown as-is, blanks as '.'."""
    rows = []
    for r in range(9):
        cells = []
        for c in range(9):
            t = int(tokens[r * 9 + c])
            cells.append(str(t - 1) if 2 <= t <= 10 else ".")
            if c in (2, 5):
                cells.append("|")
        rows.append(" ".join(cells))
        if r in (2, 5):
            rows.append("------+-------+------")
    return "\n".join(rows)


def is_valid_solution(tokens: np.ndarray) -> bool:
    """Whether 81 tokens spell a complete valid Sudoku (every row, column and box holds 1..9)."""
    return bool(sudoku.is_valid_solution(sudoku.decode(np.asarray(tokens).reshape(81))))


def run_steps(model, inputs: np.ndarray, num_steps: int) -> dict[str, np.ndarray]:
    """All supervision steps from a fresh carry; returns per-step logits, preds, q_halt, q_continue."""
    x = tf.constant(inputs, tf.int32)
    ids = tf.zeros([len(inputs)], tf.int32)
    rows = model.gather_puzzle_rows(ids) if model.puzzle_emb is not None else None
    carry = model.initial_carry(len(inputs))
    out = {"logits": [], "preds": [], "q_halt": [], "q_continue": []}
    step = tf.function(lambda c: model.inner(c, x, rows, training=False))
    for _ in range(num_steps):
        o = step(carry)
        carry = o["carry"]
        out["logits"].append(o["logits"].numpy())
        out["preds"].append(np.argmax(o["logits"].numpy(), -1).astype(np.int32))
        out["q_halt"].append(o["q_halt"].numpy())
        out["q_continue"].append(o["q_continue"].numpy())
    return {k: np.stack(v, axis=1) for k, v in out.items()}  # [N, steps, ...]


def _read_inputs() -> np.ndarray:
    """[N, 81] token ids from --puzzle or --puzzles (exit status 2 with one line on a bad puzzle)."""
    if bool(_PUZZLE.value) == bool(_PUZZLES.value):
        raise app.UsageError("give exactly one of --puzzle or --puzzles")
    try:
        if _PUZZLE.value:
            return parse_puzzle(_PUZZLE.value, "--puzzle")[None]
        return read_puzzles(_PUZZLES.value)
    except PuzzleFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def print_steps(inputs: np.ndarray, res: dict[str, np.ndarray]) -> None:
    """Per puzzle: cells changed, q_halt, whether the Q test passes (`res["halt"]`, default q_halt > 0)
    and validity at every step, then the final grid."""
    n_steps = res["preds"].shape[1]
    halts = res["halt"] if "halt" in res else res["q_halt"] > 0
    for i, x in enumerate(inputs):
        print(f"\npuzzle {i + 1}: {int((x == sudoku.BLANK_TOKEN).sum())} blanks")
        prev = None
        for k in range(n_steps):
            p = res["preds"][i, k]
            filled = np.where(x == sudoku.BLANK_TOKEN, p, x)
            changed = 0 if prev is None else int((filled != prev).sum())
            print(
                f"  step {k + 1:2d}: cells changed {changed:2d}  q_halt {res['q_halt'][i, k]:+.3f}  "
                f"halt={'yes' if halts[i, k] else 'no '}  valid={is_valid_solution(filled)}"
            )
            prev = filled
        consistent = bool(np.all(res["preds"][i, -1][x > 1] == x[x > 1]))
        print(grid_string(prev))
        print(f"  valid Sudoku: {is_valid_solution(prev)}; agrees with the givens: {consistent}")


def _write_outputs(inputs: np.ndarray, res: dict[str, np.ndarray]) -> None:
    """--render / --gif pictures and the --dump file."""
    if _RENDER.value:
        from trm_tf.tools import render

        labels = read_puzzles(_SOLUTIONS.value) if _SOLUTIONS.value else None
        paths = render.render_batch(
            "sudoku", inputs, res, labels=labels, path=_RENDER.value, gif_path=_GIF.value
        )
        print("\nwrote " + ", ".join(paths))
    if _DUMP.value:
        import io

        buf = io.BytesIO()
        np.savez(buf, inputs=inputs, **res)
        with tf.io.gfile.GFile(_DUMP.value, "wb") as f:
            f.write(buf.getvalue())
        print(f"\nwrote {_DUMP.value}: " + ", ".join(f"{k} {v.shape}" for k, v in res.items()))


def main(argv):
    del argv
    if not _CHECKPOINT.value:
        raise app.UsageError("--checkpoint is required (a run directory, checkpoint or state_dict)")
    inputs = _read_inputs()
    try:
        config = restore.resolve_config(_CHECKPOINT.value, _CONFIG.value)
        model = load_model(config, _CHECKPOINT.value, _EMA.value)
    except restore.RestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    n_steps = _STEPS.value if _STEPS.value > 0 else int(config.act.halt_max_steps)
    res = run_steps(model, inputs, n_steps)
    # "halt" by the Q test the model trained with (q_halt > q_continue for HRM and the transformer)
    res["halt"] = act.halt_flags(res["q_halt"], res["q_continue"], config.act.halt_rule)
    print_steps(inputs, res)
    _write_outputs(inputs, res)


if __name__ == "__main__":
    app.run(main)
