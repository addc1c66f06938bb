"""Pure-numpy Sudoku solving and generation: vectorised constraint propagation, a bitmask depth-first
search (solution counting and solving), the backtrack rating, random full grids and seeded puzzle
generation.

Grids are digits 1..9 with 0 for a blank, [..., 81] in row-major order. Every random draw comes from a
`numpy.random.Generator` seeded from explicit integers, so the generated datasets are byte-reproducible.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from trm_tf.tasks.sudoku import UNITS
from trm_tf.tasks.sudoku import UNITS_OF_CELL as _UNITS_OF_CELL


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


_POPCOUNT = [bin(m).count("1") for m in range(1 << 10)]
_ALL_DIGITS = 0x3FE  # bits 1..9


class _Board:
    """A grid for depth-first search: the digits, and the digits used by each row, column and box as
    bit masks (bit d set = digit d used), so a cell's free digits are one OR and one NOT away."""

    def __init__(self) -> None:
        self.grid = [0] * 81
        self.rows, self.cols, self.boxes = [0] * 9, [0] * 9, [0] * 9

    @staticmethod
    def cell(i: int) -> tuple[int, int, int, int]:
        """(index, row, column, box) of cell i."""
        return i, i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3

    def used(self, r: int, c: int, b: int) -> int:
        return self.rows[r] | self.cols[c] | self.boxes[b]

    def toggle(self, r: int, c: int, b: int, bit: int) -> None:
        """Marks the digit `bit` used in row r, column c and box b, or unused when it was marked."""
        self.rows[r] ^= bit
        self.cols[c] ^= bit
        self.boxes[b] ^= bit


def _depth_first(
    board: _Board,
    todo: list,
    digits: Callable[[int, int], Iterable[int]],
    at_full: Callable[[], bool],
) -> bool:
    """Fills the `todo` cells of `board` depth-first, always at a cell with the fewest free digits (the
    first such cell of `todo` on ties), trying `digits(cell, free_mask)` in order.

    `at_full()` is called at each complete grid; its True stops the search (True is returned, the board
    left as it is), its False makes the search go on to the next grid.
    """
    if not todo:
        return at_full()
    best, best_n, best_free = -1, 10, 0
    for k, (_, r, c, b) in enumerate(todo):
        free = ~board.used(r, c, b) & _ALL_DIGITS
        n = _POPCOUNT[free]
        if n < best_n:
            best, best_n, best_free = k, n, free
            if n <= 1:
                break
    if best_n == 0:
        return False
    i, r, c, b = todo[best]
    rest = todo[:best] + todo[best + 1 :]
    for d in digits(i, best_free):
        board.grid[i] = d
        board.toggle(r, c, b, 1 << d)
        if _depth_first(board, rest, digits, at_full):
            return True
        board.toggle(r, c, b, 1 << d)
    board.grid[i] = 0
    return False


def _ascending(_cell: int, free: int) -> list[int]:
    return [d for d in range(1, 10) if free & (1 << d)]


def _search(question: Sequence[int], limit: int) -> tuple[int, np.ndarray | None]:
    """Bitmask depth-first search, fewest candidates first: (min(#solutions, limit), first one)."""
    board = _Board()
    empty = []
    for i, d in enumerate(int(x) for x in np.asarray(question).reshape(81)):
        _, r, c, b = board.cell(i)
        if not d:
            empty.append(board.cell(i))
            continue
        bit = 1 << d
        if not 1 <= d <= 9 or board.used(r, c, b) & bit:
            return 0, None
        board.grid[i] = d
        board.toggle(r, c, b, bit)
    count, first = 0, None

    def at_full() -> bool:
        nonlocal count, first
        count += 1
        if first is None:
            first = np.asarray(board.grid, np.uint8)
        return count >= limit

    _depth_first(board, empty, _ascending, at_full)
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


# ----------------------------------------------------------------------------------------------------
# The backtrack rating: how much search a puzzle needs beyond naked and hidden singles.

_PEERS = [sorted({int(j) for u in _UNITS_OF_CELL[i] for j in UNITS[u]} - {i}) for i in range(81)]
_UNIT_LISTS = [[int(j) for j in u] for u in UNITS]


def _singles(cand: list[int]) -> bool:
    """Naked and hidden singles on bit-mask candidates (bit d = digit d), in place, to the fixpoint.

    A cell with one candidate removes it from its 20 peers; a digit with one place left in a unit is
    placed there. Returns False at a contradiction: a cell without candidates, or a digit without a
    place in some unit (or two digits whose only place is the same cell).
    """
    queue = [i for i in range(81) if _POPCOUNT[cand[i]] == 1]
    cleared = [False] * 81
    while True:
        while queue:
            i = queue.pop()
            if cleared[i]:
                continue
            cleared[i] = True
            bit = cand[i]
            for p in _PEERS[i]:
                c = cand[p]
                if c & bit:
                    c &= ~bit
                    if not c:
                        return False
                    cand[p] = c
                    if _POPCOUNT[c] == 1:
                        queue.append(p)
        for unit in _UNIT_LISTS:
            once = twice = 0
            for i in unit:
                twice |= once & cand[i]
                once |= cand[i]
            if once != _ALL_DIGITS:
                return False
            only = once & ~twice
            if not only:
                continue
            for i in unit:
                b = cand[i] & only
                if b and b != cand[i]:
                    if _POPCOUNT[b] > 1:
                        return False
                    cand[i] = b
                    queue.append(i)
        if not queue:
            return True


def _rated_search(cand: list[int], limit: int, found: list) -> int:
    """Depth-first search under singles propagation; appends solutions to `found` (up to `limit`) and
    returns the number of guesses undone (see `rating`)."""
    if not _singles(cand):
        return 1
    best, best_n = -1, 10
    for i in range(81):
        n = _POPCOUNT[cand[i]]
        if 1 < n < best_n:
            best, best_n = i, n
            if n == 2:
                break
    if best < 0:
        found.append(np.array([_POPCOUNT[c - 1] for c in cand], np.uint8))  # bit d -> digit d
        return 0
    undone, rest = 0, cand[best]
    while rest and len(found) < limit:
        bit = rest & -rest
        rest ^= bit
        child = list(cand)
        child[best] = bit
        undone += _rated_search(child, limit, found)
    return undone


def _candidates(question) -> list[int]:
    """Bit-mask candidates of a question: bit d for a given d, every digit for a blank."""
    return [(1 << int(d)) if d else _ALL_DIGITS for d in np.asarray(question).reshape(81)]


def _singles_solve(question) -> bool:
    """Whether naked and hidden singles alone solve the puzzle (rating 0 for a unique puzzle)."""
    cand = _candidates(question)
    return _singles(cand) and all(_POPCOUNT[c] == 1 for c in cand)


def _no_other_digit(question, cell: int, digit: int) -> bool:
    """For a puzzle known to have a solution with `digit` at the blank `cell`: whether it has no
    solution with another digit there, i.e. whether that solution is its only one (the propagating
    search, which is much faster than `count_solutions` on sparse puzzles)."""
    cand = _candidates(question)
    cand[cell] &= ~(1 << digit)
    found: list = []
    _rated_search(cand, 1, found)
    return not found


def rating(question: Sequence[int]) -> int:
    """The backtrack rating of a puzzle with one solution: the number of guesses the search undoes.

    The search propagates naked and hidden singles to their fixpoint (`_singles`); if cells remain
    open, it branches on the first cell (row-major) with the fewest candidates and tries each candidate
    digit in turn, propagating again after each guess. A guess whose propagation (or whose whole
    subtree) ends in contradictions is undone; the rating counts the guesses whose own propagation
    ends in a contradiction (the dead ends of the search tree). The search explores the whole tree
    (it proves the solution unique), so the count does not depend on the order digits are tried in.

    Rating 0 means singles alone solve the puzzle; a puzzle that needs search has rating >= 1 (at
    its first branch cell every candidate but the solution's leads only to dead ends).

    Args:
      question: 81 digits with 0 blank.

    Returns:
      The number of dead ends.

    Raises:
      ValueError: the puzzle has no solution or more than one.
    """
    found: list = []
    dead_ends = _rated_search(_candidates(question), 2, found)
    if len(found) != 1:
        raise ValueError(f"rating needs a puzzle with one solution, this one has {len(found)}+")
    return dead_ends


def ratings(questions: np.ndarray) -> np.ndarray:
    """`rating` of each puzzle of [N, 81] questions, as int32 [N]."""
    return np.array([rating(q) for q in np.asarray(questions).reshape(-1, 81)], np.int32)


def random_full_grid(rng: np.random.Generator) -> np.ndarray:
    """A random complete Sudoku grid by seeded randomized backtracking.

    The three diagonal boxes are independent, so they are filled with random permutations first; the
    remaining cells are then filled depth-first, always at a cell with the fewest candidates (ties
    broken by a random cell order), trying digits in a random order drawn once per cell.

    Returns:
      uint8 [81].
    """
    board = _Board()
    for b in (0, 4, 8):
        digits = rng.permutation(9) + 1
        for k in range(9):
            i = (b // 3) * 27 + (b % 3) * 3 + (k // 3) * 9 + k % 3
            board.grid[i] = int(digits[k])
            board.toggle(i // 9, i % 9, b, 1 << int(digits[k]))
    # Remaining cells in a random order (random tie-breaking for the fewest-candidates rule) and one
    # random digit order per cell, all drawn up front so the grid depends only on rng.
    todo = [board.cell(i) for i in rng.permutation(81).tolist() if board.grid[i] == 0]
    orders = (np.argsort(rng.random((81, 9)), axis=1) + 1).tolist()

    def in_cell_order(i: int, free: int) -> list[int]:
        return [d for d in orders[i] if free & (1 << d)]

    # Stops at the first full grid. Cannot fail: diagonal boxes always extend to a full grid.
    if not _depth_first(board, todo, in_cell_order, lambda: True):
        raise RuntimeError("backtracking failed to complete a grid")
    return np.asarray(board.grid, np.uint8)


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
    return _blank_until_accepted(solutions, rngs, counts, require), solutions


def generate_search_puzzles(
    n: int,
    seed: int = 0,
    rating_band: tuple[int, int | None] = (1, None),
    max_blanks: int | None = None,
    workers: int = 1,
    easy_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generates `n` puzzles that need search, with a unique solution and a `rating` in a band.

    Puzzle i depends only on (seed, i), whatever `workers`: from a seeded random full grid, clues are
    removed one by one in random order while the solution stays unique, down to a minimal puzzle (no
    clue can go). With `max_blanks`, solution digits are then put back at random blanks, each kept only
    if the puzzle still needs search (`REVEAL_TRIES` random orders, the first that reaches `max_blanks`
    blanks wins). A draw that needs no search, keeps more than `max_blanks` blanks or has a rating
    outside `rating_band` is replaced by a new grid from the same stream.

    With `easy_fraction` > 0, each puzzle is then, with that probability (a draw of its own stream),
    turned into its easy twin: solution digits go back at random blanks until naked and hidden singles
    solve it (rating 0, a few blanks fewer), the way Sudoku-Extreme mixes easy puzzles with hard ones.

    Args:
      n: number of puzzles.
      seed: base seed.
      rating_band: inclusive (lo, hi) of `rating`; hi None = no upper bound. lo >= 1.
      max_blanks: at most this many blanks per puzzle (None: minimal puzzles).
      workers: processes generating puzzles in parallel (the result does not depend on it).
      easy_fraction: the expected share of puzzles made singles-solvable (rating 0); 0 = none.

    Returns:
      (questions, solutions, ratings): uint8 [n, 81] with 0 = blank, uint8 [n, 81], int32 [n].
    """
    lo, hi = rating_band
    if lo < 1 or (hi is not None and hi < lo):
        raise ValueError(f"rating_band must be (lo >= 1, hi >= lo or None), got {rating_band!r}")
    jobs = [(int(seed), i, lo, hi, max_blanks, float(easy_fraction)) for i in range(n)]
    if workers > 1 and n > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold TF threads
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            out = list(pool.map(_search_puzzle, jobs, chunksize=max(1, n // (8 * workers))))
    else:
        out = [_search_puzzle(job) for job in jobs]
    shape = (n, 81)
    return (
        np.asarray([o[0] for o in out], np.uint8).reshape(shape),
        np.asarray([o[1] for o in out], np.uint8).reshape(shape),
        np.asarray([o[2] for o in out], np.int32).reshape(n),
    )


REVEAL_TRIES = 4


def _search_puzzle(job) -> tuple[np.ndarray, np.ndarray, int]:
    """Puzzle i of `generate_search_puzzles`: job = (seed, i, rating lo, rating hi, max_blanks,
    easy_fraction)."""
    seed, i, lo, hi, max_blanks, easy_fraction = job
    rng = np.random.default_rng([seed, 0x5EA, i])
    for _ in range(10_000):
        solution = random_full_grid(rng)
        q = _greedy_remove(solution, 0, rng)
        if _singles_solve(q):
            continue
        if max_blanks is not None:
            for _ in range(REVEAL_TRIES):
                revealed = _reveal_while_search(q, solution, max_blanks, rng)
                if (revealed == 0).sum() <= max_blanks:
                    break
            else:
                continue
            q = revealed
        r = rating(q)
        if r >= lo and (hi is None or r <= hi):
            if easy_fraction and rng.random() < easy_fraction:
                return _reveal_until_singles(q, solution, rng), solution, 0
            return q, solution, r
    raise RuntimeError(f"puzzle {i}: no draw in 10,000 had a rating in {(lo, hi)}")


def _reveal_until_singles(q, solution, rng) -> np.ndarray:
    """Puts solution digits back at blanks of `q` in random order until singles alone solve it."""
    q = q.copy()
    for i in rng.permutation(np.flatnonzero(q == 0)).tolist():
        q[i] = solution[i]
        if _singles_solve(q):
            break
    return q


def _reveal_while_search(q, solution, max_blanks: int, rng) -> np.ndarray:
    """Puts solution digits back at blanks of `q` in random order, each only if the puzzle still needs
    search, until `max_blanks` blanks remain or the order is exhausted."""
    q = q.copy()
    blanks = int((q == 0).sum())
    for i in rng.permutation(np.flatnonzero(q == 0)).tolist():
        if blanks <= max_blanks:
            break
        q[i] = solution[i]
        if _singles_solve(q):
            q[i] = 0  # singles would solve it: keep the blank
        else:
            blanks -= 1
    return q


def _blank_until_accepted(solutions, rngs, counts, require: str) -> np.ndarray:
    """Questions from `solutions`: puzzle i gets `counts[i]` blanks drawn from `rngs[i]`, re-drawn until
    the pattern passes `require` (rejection sampling, vectorised over the puzzles still pending)."""
    questions = solutions.copy()
    pending = np.arange(len(solutions))
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
    return questions


def _greedy_remove(solution: np.ndarray, min_clues: int, rng: np.random.Generator) -> np.ndarray:
    q = solution.copy()
    clues = 81
    for i in np.argsort(rng.random(81), kind="stable"):
        if clues <= min_clues:
            break
        d = q[i]
        q[i] = 0
        # The peers holding the 8 other digits force d back (a naked single): still one solution.
        if len({int(q[p]) for p in _PEERS[i]} - {0}) == 8 or _no_other_digit(q, i, int(d)):
            clues -= 1
        else:
            q[i] = d
    return q
