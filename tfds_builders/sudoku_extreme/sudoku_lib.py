"""Pure-numpy Sudoku helpers of the builder: CSV parsing and validation, augmentation, subsampling.

This module has no TensorFlow/TFDS dependency so that its tests run in milliseconds. The token
encoding and the validity checks are `trm_tf.tasks.sudoku` (shared with the evaluators, the solver
CLI and the renderer); solving and generation are `sudoku_solver`.

Grids are uint8 arrays of shape [..., 81] in row-major order holding digits 1..9 and 0 for a blank.
Tokens (what the model sees) follow the reference builder: pad 0, blank 1, digit d -> d+1,
so `vocab_size = 11`.

Randomness: every random draw comes from a `numpy.random.Generator` seeded from an explicit integer
tuple (e.g. `(seed, row)`), never from global state, so builds are byte-reproducible.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from trm_tf.tasks.sudoku import givens_agree, is_valid_solution

# Random floats consumed per augmentation: 9 digit keys, 1 transpose coin, 3 band keys,
# 9 row-in-band keys, 3 stack keys, 9 column-in-stack keys.
_DRAWS_PER_AUG = 34


class SudokuFormatError(ValueError):
    """A row of a Sudoku CSV is malformed; the message names the file and the line."""


# ----------------------------------------------------------------------------------------------
# CSV parsing with validation.
# ----------------------------------------------------------------------------------------------


def parse_csv_text(
    text: str, filename: str = "<csv>", min_difficulty: int | None = None
) -> dict[str, np.ndarray]:
    """Parses and validates a Sudoku-Extreme CSV (`source,question,answer,rating` with a header).

    Every row is checked: question is 81 chars of '.' or 1-9, answer is 81 digits 1-9, the answer
    agrees with the givens and is a valid Sudoku. The first bad row raises `SudokuFormatError`
    naming `filename` and its 1-based line number (the header is line 1).

    Args:
      text: the whole CSV file content.
      filename: name used in error messages.
      min_difficulty: if set, keep only rows with `rating >= min_difficulty` (after validation, so
        row indices in error messages always refer to the file).

    Returns:
      dict with `questions` uint8 [N, 81] (0 = blank), `solutions` uint8 [N, 81], `ratings` int64 [N]
      and `lines` int64 [N] (1-based line numbers in the file).
    """
    questions, answers, ratings, lines = _read_rows(text, filename)
    lines_arr = np.asarray(lines, dtype=np.int64)
    qc = _char_grid(questions, lines, filename, "question")
    ac = _char_grid(answers, lines, filename, "answer")
    q_ok = ((qc >= ord("1")) & (qc <= ord("9"))) | (qc == ord("."))
    a_ok = (ac >= ord("1")) & (ac <= ord("9"))
    _raise_first(~q_ok.all(axis=1), lines_arr, filename, "question must hold only '.' and 1-9")
    _raise_first(~a_ok.all(axis=1), lines_arr, filename, "answer must hold only digits 1-9")
    qd = np.where(qc == ord("."), 0, qc - ord("0")).astype(np.uint8)
    ad = (ac - ord("0")).astype(np.uint8)
    _raise_first(~givens_agree(qd, ad), lines_arr, filename, "answer disagrees with the givens")
    _raise_first(~is_valid_solution(ad), lines_arr, filename, "answer is not a valid Sudoku")
    ratings_arr = np.asarray(ratings, dtype=np.int64)
    keep = (
        np.ones(len(questions), bool) if min_difficulty is None else ratings_arr >= min_difficulty
    )
    return {
        "questions": qd[keep],
        "solutions": ad[keep],
        "ratings": ratings_arr[keep],
        "lines": lines_arr[keep],
    }


def _read_rows(text: str, filename: str) -> tuple[list[str], list[str], list[int], list[int]]:
    """(questions, answers, ratings, line numbers) of the CSV's rows, with the per-row checks that need
    no decoding: header columns, field count, 81-character question and answer, numeric rating."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise SudokuFormatError(f"{filename}: line 1: empty file, expected a header") from None
    header = [h.strip() for h in header]
    needed = ("question", "answer", "rating")
    if any(h not in header for h in needed):
        raise SudokuFormatError(
            f"{filename}: line 1: header {header!r} lacks one of the columns {list(needed)}"
        )
    iq, ia, ir = (header.index(h) for h in needed)
    questions, answers, ratings, lines = [], [], [], []
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # Blank lines (e.g. a trailing newline) carry no puzzle.
        where = f"{filename}: line {line}"
        if len(row) != len(header):
            raise SudokuFormatError(
                f"{where}: expected {len(header)} fields, got {len(row)}: {row!r}"
            )
        for what, value in (("question", row[iq]), ("answer", row[ia])):
            if len(value) != 81:
                raise SudokuFormatError(f"{where}: {what} has {len(value)} chars, expected 81")
        try:
            ratings.append(int(float(row[ir])))
        except ValueError:
            raise SudokuFormatError(f"{where}: rating {row[ir]!r} is not a number") from None
        questions.append(row[iq])
        answers.append(row[ia])
        lines.append(line)
    return questions, answers, ratings, lines


def _char_grid(strings: list[str], lines: list[int], filename: str, what: str) -> np.ndarray:
    """The 81-character strings as a uint8 [N, 81] array of their ASCII codes."""
    try:
        raw = "".join(strings).encode("ascii")
    except UnicodeEncodeError:
        bad = next(i for i, s in enumerate(strings) if not s.isascii())
        raise SudokuFormatError(
            f"{filename}: line {lines[bad]}: {what} has non-ASCII characters"
        ) from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(strings), 81)


def _raise_first(bad: np.ndarray, lines: np.ndarray, filename: str, what: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise SudokuFormatError(f"{filename}: line {int(lines[i])}: {what}")


def to_csv_text(questions: np.ndarray, solutions: np.ndarray, source: str = "generated") -> str:
    """Writes digit grids as a Sudoku-Extreme style CSV (header, `.` for blanks, rating 0)."""
    out = ["source,question,answer,rating"]
    for q, s in zip(np.asarray(questions), np.asarray(solutions)):
        qs = "".join("." if d == 0 else str(int(d)) for d in q)
        out.append(f"{source},{qs},{''.join(str(int(d)) for d in s)},0")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# Augmentation (the reference's shuffle_sudoku), vectorised.
# ----------------------------------------------------------------------------------------------


def _perm_from_keys(keys: np.ndarray) -> np.ndarray:
    """A uniform random permutation per row from i.i.d. uniform keys (argsort along the last axis)."""
    return np.argsort(keys, axis=-1, kind="stable")


def draw_transforms(rng: np.random.Generator, num: int) -> dict[str, np.ndarray]:
    """Draws `num` shuffle_sudoku transforms.

    All randomness is read as one [num, 34] block of uniforms, filled row by row, so the first k
    transforms do not depend on `num` (sub-configs with fewer augmentations are prefixes).

    Returns:
      dict with `digit_map` uint8 [num, 10] (digit_map[:, 0] == 0), `transpose` bool [num],
      `row_perm` and `col_perm` int64 [num, 9].
    """
    u = rng.random((num, _DRAWS_PER_AUG))
    digit_map = np.zeros((num, 10), np.uint8)
    digit_map[:, 1:] = _perm_from_keys(u[:, 0:9]) + 1
    transpose = u[:, 9] < 0.5
    bands = _perm_from_keys(u[:, 10:13])  # [num, 3]
    rows_in = _perm_from_keys(u[:, 13:22].reshape(num, 3, 3))  # [num, 3, 3]
    stacks = _perm_from_keys(u[:, 22:25])
    cols_in = _perm_from_keys(u[:, 25:34].reshape(num, 3, 3))
    # row_perm = concat over position p of (3 * bands[p] + rows_in[p]): the p-th output band is
    # input band bands[p], with its rows in an independently permuted order.
    row_perm = (3 * bands[:, :, None] + rows_in).reshape(num, 9)
    col_perm = (3 * stacks[:, :, None] + cols_in).reshape(num, 9)
    return {
        "digit_map": digit_map,
        "transpose": transpose,
        "row_perm": row_perm,
        "col_perm": col_perm,
    }


def apply_transforms(grid: np.ndarray, t: dict[str, np.ndarray]) -> np.ndarray:
    """Applies transforms to one grid or to a matching batch of grids.

    Order as the reference: optional transpose, then new[i, j] = old[row_perm[i], col_perm[j]],
    then digit mapping (blank 0 stays 0).

    Args:
      grid: digits [81] (broadcast to every transform) or [num, 81].
      t: output of `draw_transforms`.

    Returns:
      uint8 [num, 81].
    """
    num = t["row_perm"].shape[0]
    g = np.broadcast_to(np.asarray(grid, np.uint8).reshape(-1, 9, 9), (num, 9, 9))
    g = np.where(t["transpose"][:, None, None], g.transpose(0, 2, 1), g)
    a = np.arange(num)[:, None, None]
    g = g[a, t["row_perm"][:, :, None], t["col_perm"][:, None, :]]
    g = t["digit_map"][a, g]
    return g.reshape(num, 81).astype(np.uint8)


def shuffle_sudoku(
    board: np.ndarray, solution: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random validity-preserving shuffle applied identically to a puzzle and its solution.

    Args:
      board: digits [81] with 0 for blanks.
      solution: digits [81].
      rng: seeded generator.

    Returns:
      (new_board, new_solution), uint8 [81] each.
    """
    t = draw_transforms(rng, 1)
    return apply_transforms(board, t)[0], apply_transforms(solution, t)[0]


def augment_rng(seed: int, row: int) -> np.random.Generator:
    """The generator for the augmentations of base puzzle `row` (its row index in the source file)."""
    return np.random.default_rng([int(seed), 0xA06, int(row)])


def augment_puzzle(
    question: np.ndarray, solution: np.ndarray, num_aug: int, seed: int, row: int
) -> tuple[np.ndarray, np.ndarray]:
    """Original plus `num_aug` shuffled copies of one puzzle, depending only on (seed, row).

    Returns:
      (questions, solutions), uint8 [num_aug + 1, 81]; index 0 is the original.
    """
    q = np.asarray(question, np.uint8).reshape(81)
    s = np.asarray(solution, np.uint8).reshape(81)
    if num_aug == 0:
        return q[None].copy(), s[None].copy()
    t = draw_transforms(augment_rng(seed, row), num_aug)
    qs = np.concatenate([q[None], apply_transforms(q, t)])
    ss = np.concatenate([s[None], apply_transforms(s, t)])
    return qs, ss


def subsample_rows(num_rows: int, size: int | None, seed: int) -> np.ndarray:
    """Nested seeded subsample: the first `size` entries of one seeded permutation of all rows.

    Because the permutation does not depend on `size`, sub100 is a prefix of sub250, and so on.
    `size=None` (or >= num_rows) keeps every row in file order.
    """
    if size is None or size >= num_rows:
        return np.arange(num_rows)
    perm = np.random.default_rng([int(seed), 0x5AB]).permutation(num_rows)
    return perm[:size]
