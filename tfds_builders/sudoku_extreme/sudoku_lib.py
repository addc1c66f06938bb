"""Pure-numpy Sudoku helpers: CSV parsing and validation, encoding, augmentation, generation.

This module has no TensorFlow/TFDS dependency so that the builder, the quickstart and `trm_tf.solve`
can all reuse it, and so that its tests run in milliseconds.

Grids are uint8 arrays of shape [..., 81] in row-major order holding digits 1..9 and 0 for a blank.
Tokens (what the model sees) follow the reference builder (docs/model.md#sudoku-extreme): pad 0,
blank 1, digit d -> d+1, so `vocab_size = 11`.

Randomness: every random draw comes from a `numpy.random.Generator` seeded from an explicit integer
tuple (e.g. `(seed, row)`), never from global state, so builds are byte-reproducible.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

SEQ_LEN = 81
VOCAB_SIZE = 11
PAD_ID = 0
BLANK_TOKEN = 1

# Random floats consumed per augmentation: 9 digit keys, 1 transpose coin, 3 band keys,
# 9 row-in-band keys, 3 stack keys, 9 column-in-stack keys.
_DRAWS_PER_AUG = 34

# Unit (row, column, box) membership of every cell, used by the vectorised checks.
_CELLS = np.arange(81)
_ROW_OF = _CELLS // 9
_COL_OF = _CELLS % 9
_BOX_OF = (_ROW_OF // 3) * 3 + _COL_OF // 3
UNITS = np.concatenate(
    [
        np.arange(81).reshape(9, 9),  # rows
        np.arange(81).reshape(9, 9).T,  # columns
        np.array(
            [
                [(b // 3) * 27 + (b % 3) * 3 + r * 9 + c for r in range(3) for c in range(3)]
                for b in range(9)
            ]
        ),  # boxes
    ]
)  # [27, 9]
_UNITS_OF_CELL = np.stack([_ROW_OF, 9 + _COL_OF, 18 + _BOX_OF], axis=1)  # [81, 3]


class SudokuFormatError(ValueError):
    """A row of a Sudoku CSV is malformed; the message names the file and the line."""


# ----------------------------------------------------------------------------------------------
# Encoding and validity.
# ----------------------------------------------------------------------------------------------


def encode(grids: np.ndarray) -> np.ndarray:
    """Maps digit grids to model tokens: blank (0) -> 1, digit d -> d + 1.

    Args:
      grids: integer array [..., 81] with 0 for blank and 1..9 for digits.

    Returns:
      uint8 array of the same shape with tokens in 1..10 (0 = pad is never produced).
    """
    return (np.asarray(grids, dtype=np.uint8) + 1).astype(np.uint8)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Inverse of `encode`: tokens 1..10 -> digits 0..9 (pad 0 also maps to blank 0)."""
    tokens = np.asarray(tokens)
    return np.where(tokens > 0, tokens - 1, 0).astype(np.uint8)


def is_valid_solution(grids: np.ndarray) -> np.ndarray:
    """Whether each complete grid is a valid Sudoku (every row, column and box holds 1..9).

    Args:
      grids: integer array [81] or [N, 81] of digits.

    Returns:
      bool scalar or bool array [N].
    """
    grids = np.asarray(grids)
    single = grids.ndim == 1
    g = grids.reshape(-1, 81).astype(np.int64)
    in_range = ((g >= 1) & (g <= 9)).all(axis=1)
    # One-hot of each unit's digits; valid iff every digit appears exactly once per unit.
    onehot = (g[:, UNITS][..., None] == np.arange(1, 10)).sum(axis=2)  # [N, 27, 9]
    ok = in_range & (onehot == 1).all(axis=(1, 2))
    return bool(ok[0]) if single else ok


def givens_agree(questions: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """Whether every given (non-zero) cell of each question equals the solution cell. Shape [N]."""
    q = np.asarray(questions).reshape(-1, 81)
    s = np.asarray(solutions).reshape(-1, 81)
    return ((q == 0) | (q == s)).all(axis=1)


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
    width = len(header)
    questions, answers, ratings, lines = [], [], [], []
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # Blank lines (e.g. a trailing newline) carry no puzzle.
        if len(row) != width:
            raise SudokuFormatError(
                f"{filename}: line {line}: expected {width} fields, got {len(row)}: {row!r}"
            )
        q, a = row[iq], row[ia]
        if len(q) != 81:
            raise SudokuFormatError(
                f"{filename}: line {line}: question has {len(q)} chars, expected 81"
            )
        if len(a) != 81:
            raise SudokuFormatError(
                f"{filename}: line {line}: answer has {len(a)} chars, expected 81"
            )
        try:
            rating = int(float(row[ir]))
        except ValueError:
            raise SudokuFormatError(
                f"{filename}: line {line}: rating {row[ir]!r} is not a number"
            ) from None
        questions.append(q)
        answers.append(a)
        ratings.append(rating)
        lines.append(line)
    n = len(questions)
    lines_arr = np.asarray(lines, dtype=np.int64)

    def _chars(strings: list[str], what: str) -> np.ndarray:
        try:
            raw = "".join(strings).encode("ascii")
        except UnicodeEncodeError:
            bad = next(i for i, s in enumerate(strings) if not s.isascii())
            raise SudokuFormatError(
                f"{filename}: line {lines[bad]}: {what} has non-ASCII characters"
            ) from None
        return np.frombuffer(raw, dtype=np.uint8).reshape(n, 81)

    qc = _chars(questions, "question")
    ac = _chars(answers, "answer")
    q_ok = ((qc >= ord("1")) & (qc <= ord("9"))) | (qc == ord("."))
    a_ok = (ac >= ord("1")) & (ac <= ord("9"))
    _raise_first(~q_ok.all(axis=1), lines_arr, filename, "question must hold only '.' and 1-9")
    _raise_first(~a_ok.all(axis=1), lines_arr, filename, "answer must hold only digits 1-9")
    qd = np.where(qc == ord("."), 0, qc - ord("0")).astype(np.uint8)
    ad = (ac - ord("0")).astype(np.uint8)
    _raise_first(~givens_agree(qd, ad), lines_arr, filename, "answer disagrees with the givens")
    _raise_first(~is_valid_solution(ad), lines_arr, filename, "answer is not a valid Sudoku")
    ratings_arr = np.asarray(ratings, dtype=np.int64)
    keep = np.ones(n, bool) if min_difficulty is None else ratings_arr >= min_difficulty
    return {
        "questions": qd[keep],
        "solutions": ad[keep],
        "ratings": ratings_arr[keep],
        "lines": lines_arr[keep],
    }


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
# Augmentation (the reference's shuffle_sudoku, docs/model.md#sudoku-extreme), vectorised.
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


# ----------------------------------------------------------------------------------------------
# Solving (vectorised constraint propagation + bitmask search) and generation.
# ----------------------------------------------------------------------------------------------


def propagate(questions: np.ndarray, max_iters: int = 81, hidden: bool = True):
    """Batched naked-single (and optionally hidden-single) propagation.

    Args:
      questions: digits [N, 81] with 0 blank.
      max_iters: propagation rounds.
      hidden: also apply hidden singles (a digit with one place left in a unit).

    Returns:
      (cand bool [N, 81, 9], solved bool [N], contradiction bool [N]).
    """
    q = np.asarray(questions).reshape(-1, 81)
    cand = np.ones(q.shape + (9,), bool)
    given = q > 0
    cand[given] = np.arange(1, 10) == q[given][:, None]
    contra = np.zeros(q.shape[0], bool)
    for _ in range(max_iters):
        fixed = cand.sum(-1) == 1  # [N, 81]
        fixed_cand = cand & fixed[..., None]
        per_unit = fixed_cand[:, UNITS, :].sum(axis=2)  # [N, 27, 9]: fixed copies of each digit
        contra |= (per_unit > 1).any(axis=(1, 2))
        has = per_unit > 0
        forbidden = has[:, _UNITS_OF_CELL, :].any(axis=2)  # [N, 81, 9]
        new = np.where(fixed[..., None], cand, cand & ~forbidden)
        if hidden:
            counts = new[:, UNITS, :].sum(axis=2)  # [N, 27, 9]
            contra |= (counts == 0).any(axis=(1, 2))
            only = new[:, UNITS, :] & (counts == 1)[:, :, None, :]  # [N, 27, 9 cells, 9 digits]
            forced = np.zeros_like(new)
            for u in range(27):
                forced[:, UNITS[u], :] |= only[:, u]
            has_forced = forced.any(-1)
            new = np.where(has_forced[..., None], forced & new, new)
        contra |= (new.sum(-1) == 0).any(axis=1)
        if np.array_equal(new, cand):
            break
        cand = new
    solved = (cand.sum(-1) == 1).all(axis=1) & ~contra
    return cand, solved, contra


_BIT_DIGIT = {1 << d: d for d in range(1, 10)}
_POPCOUNT = [bin(m).count("1") for m in range(1 << 10)]


def _search(question: Sequence[int], limit: int) -> tuple[int, np.ndarray | None]:
    """Bitmask depth-first search, fewest candidates first: (min(#solutions, limit), first one)."""
    grid = [int(d) for d in np.asarray(question).reshape(81)]
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    empty = []
    for i, d in enumerate(grid):
        r, c, b = i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3
        if d:
            bit = 1 << d
            if not 1 <= d <= 9 or (rows[r] | cols[c] | boxes[b]) & bit:
                return 0, None
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
        else:
            empty.append((i, r, c, b))
    count = 0
    first = None

    def search(todo: list) -> bool:
        nonlocal count, first
        if not todo:
            count += 1
            if first is None:
                first = np.asarray(grid, np.uint8)
            return count >= limit
        best, best_n, best_m = -1, 10, 0
        for k, (_, r, c, b) in enumerate(todo):
            m = ~(rows[r] | cols[c] | boxes[b]) & 0x3FE
            n = _POPCOUNT[m]
            if n < best_n:
                best, best_n, best_m = k, n, m
                if n <= 1:
                    break
        if best_n == 0:
            return False
        i, r, c, b = todo[best]
        rest = todo[:best] + todo[best + 1 :]
        m = best_m
        while m:
            bit = m & -m
            m ^= bit
            grid[i] = _BIT_DIGIT[bit]
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            stop = search(rest)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                return True
        grid[i] = 0
        return False

    search(empty)
    return count, first


def count_solutions(question: Sequence[int], limit: int = 2) -> int:
    """Counts solutions of one puzzle up to `limit` (bitmask depth-first search, fewest candidates first).

    Args:
      question: 81 digits with 0 blank.
      limit: stop as soon as this many solutions are found.

    Returns:
      min(number of solutions, limit); 0 if the givens already clash.
    """
    return _search(question, limit)[0]


def solve(question: Sequence[int]) -> np.ndarray | None:
    """One solution of a puzzle (digits [81] with 0 blank), or None if it has none.

    Returns:
      uint8 [81] digits; for puzzles with several solutions, the first one found.
    """
    return _search(question, 1)[1]


def has_unique_solution(questions: np.ndarray) -> np.ndarray:
    """Whether each puzzle has exactly one solution. Propagation settles most; search does the rest."""
    q = np.asarray(questions).reshape(-1, 81)
    _, solved, contra = propagate(q)
    unique = solved.copy()
    for i in np.flatnonzero(~solved & ~contra):
        unique[i] = count_solutions(q[i], limit=2) == 1
    return unique


def random_full_grid(rng: np.random.Generator) -> np.ndarray:
    """A random complete Sudoku grid by seeded randomized backtracking.

    The three diagonal boxes are independent, so they are filled with random permutations first; the
    remaining cells are then filled depth-first, always at a cell with the fewest candidates (ties
    broken by a random cell order), trying digits in a random order drawn once per cell.

    Returns:
      uint8 [81].
    """
    grid = [0] * 81
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for b in (0, 4, 8):
        digits = rng.permutation(9) + 1
        for k in range(9):
            i = (b // 3) * 27 + (b % 3) * 3 + (k // 3) * 9 + k % 3
            d = int(digits[k])
            grid[i] = d
            rows[i // 9] |= 1 << d
            cols[i % 9] |= 1 << d
            boxes[b] |= 1 << d
    # Remaining cells in a random order (random tie-breaking for the fewest-candidates rule) and one
    # random digit order per cell, all drawn up front so the grid depends only on rng.
    todo = [i for i in rng.permutation(81).tolist() if grid[i] == 0]
    orders = (np.argsort(rng.random((81, 9)), axis=1) + 1).tolist()
    cells = [(i, i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3) for i in todo]

    def fill(todo: list) -> bool:
        if not todo:
            return True
        # Fewest candidates first: on an empty-ish grid this almost never backtracks.
        best, best_n, best_used = 0, 10, 0
        for k, (_, r, c, b) in enumerate(todo):
            used = rows[r] | cols[c] | boxes[b]
            n = _POPCOUNT[~used & 0x3FE]
            if n < best_n:
                best, best_n, best_used = k, n, used
                if n <= 1:
                    break
        if best_n == 0:
            return False
        i, r, c, b = todo[best]
        rest = todo[:best] + todo[best + 1 :]
        for d in orders[i]:
            bit = 1 << d
            if best_used & bit:
                continue
            grid[i] = d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            if fill(rest):
                return True
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
        grid[i] = 0
        return False

    if not fill(cells):  # Cannot happen: diagonal boxes always extend to a full grid.
        raise RuntimeError("backtracking failed to complete a grid")
    return np.asarray(grid, np.uint8)


def generate_puzzles(
    n: int,
    num_blanks: int | tuple[int, int] | None = None,
    min_clues: int | None = None,
    seed: int = 0,
    require: str = "singles",
) -> tuple[np.ndarray, np.ndarray]:
    """Generates `n` Sudoku puzzles with a unique solution, reproducibly.

    Puzzle i depends only on (seed, i). Exactly one of `num_blanks` / `min_clues` must be given:

    * `num_blanks` (int or inclusive range (lo, hi), drawn per puzzle): that many random cells are
      blanked. `require="singles"` re-draws the blank pattern until naked singles alone solve the
      puzzle (easy; unique by construction); `require="unique"` re-draws until the solution is
      unique (checked by propagation, then a solution-counting search).
    * `min_clues`: cells are removed one by one in random order, keeping each removal only if the
      solution stays unique, until `min_clues` clues remain or no cell can be removed (hard).

    Args:
      n: number of puzzles.
      num_blanks: blanks per puzzle, or a (lo, hi) range.
      min_clues: target number of clues for greedy removal.
      seed: base seed.
      require: "singles" or "unique" (only used with `num_blanks`).

    Returns:
      (questions, solutions): uint8 [n, 81], 0 = blank in questions.
    """
    if (num_blanks is None) == (min_clues is None):
        raise ValueError("give exactly one of num_blanks and min_clues")
    if require not in ("singles", "unique"):
        raise ValueError(f"require must be 'singles' or 'unique', got {require!r}")
    rngs = [np.random.default_rng([int(seed), 0x6E7, i]) for i in range(n)]
    solutions = np.stack([random_full_grid(r) for r in rngs]) if n else np.zeros((0, 81), np.uint8)
    if min_clues is not None:
        questions = np.stack([_greedy_remove(s, min_clues, r) for s, r in zip(solutions, rngs)])
        return questions.reshape(n, 81).astype(np.uint8), solutions
    lo, hi = (num_blanks, num_blanks) if isinstance(num_blanks, int) else num_blanks
    if not 0 <= lo <= hi <= 81:
        raise ValueError(f"bad num_blanks {num_blanks!r}")
    counts = np.array([r.integers(lo, hi + 1) for r in rngs])
    questions = solutions.copy()
    pending = np.arange(n)
    # Rejection sampling of blank patterns, vectorised over the puzzles still pending.
    for _ in range(1000):
        if pending.size == 0:
            break
        keys = np.stack([rngs[i].random(81) for i in pending])
        order = np.argsort(keys, axis=1, kind="stable")
        blank = np.zeros((pending.size, 81), bool)
        blank[np.arange(pending.size)[:, None], order] = np.arange(81) < counts[pending][:, None]
        cand_q = np.where(blank, 0, solutions[pending]).astype(np.uint8)
        if require == "singles":
            _, ok, _ = propagate(cand_q, hidden=False)
        else:
            ok = has_unique_solution(cand_q)
        questions[pending[ok]] = cand_q[ok]
        pending = pending[~ok]
    if pending.size:
        raise RuntimeError(f"{pending.size} puzzles found no acceptable blank pattern")
    return questions, solutions


def _greedy_remove(solution: np.ndarray, min_clues: int, rng: np.random.Generator) -> np.ndarray:
    q = solution.copy()
    clues = 81
    for i in np.argsort(rng.random(81), kind="stable"):
        if clues <= min_clues:
            break
        d = q[i]
        q[i] = 0
        if count_solutions(q, limit=2) == 1:
            clues -= 1
        else:
            q[i] = d
    return q
