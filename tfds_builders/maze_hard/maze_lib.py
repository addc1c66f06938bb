"""Pure-numpy Maze-Hard encoding, validation, dihedral augmentation and a seeded maze generator.

Encoding (the reference maze builder; defined in `trm_tf.tasks.maze`): a 30x30 maze
is a 900-char string over the charset "# SGo" ('#' wall, ' ' open, 'S' start, 'G' goal, 'o' path), mapped
to ids 1..5 (0 = pad, vocab 6). The question has no 'o'; the answer is the same maze with the path drawn
in.

The generator makes *perfect* mazes (a uniformly shuffled Kruskal spanning tree over a 15x15 lattice of
cells at even coordinates; row 29 and column 29 stay walls), so every start-goal pair has exactly one
path, which is therefore the unique BFS shortest path. A maze is kept when that path is longer than
`min_path_length` moves (110 by default, as the hard filter of the source data). Each row uses its own
`np.random.Generator` seeded from (seed, split, row index).
"""

from __future__ import annotations

import collections
import csv
import io

import numpy as np

from trm_tf.tasks.maze import CHARSET, GOAL, GRID_SIZE, OPEN, PATH, SEQ_LEN, START, WALL, encode

CSV_HEADER = ["source", "question", "answer", "rating"]
DEFAULT_MIN_PATH_LENGTH = 110

_MOVES = ((-1, 0), (0, -1), (0, 1), (1, 0))  # fixed order: deterministic parent choice in BFS
# Lattice cells of the generator: even coordinates 0..28 (15 x 15).
_LATTICE_CELLS = np.stack(
    np.meshgrid(np.arange(0, 29, 2), np.arange(0, 29, 2), indexing="ij"), -1
).reshape(-1, 2)


class MazeDataError(ValueError):
    """A malformed Maze-Hard CSV row (the message names the file and the line)."""


def validate_pair(question: str, answer: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Checks one (question, answer) pair and encodes it.

    Args:
      question: 900 chars over "# SG" (exactly one 'S' and one 'G').
      answer: the same maze with path cells drawn as 'o' on open cells of the question.
      where: "file:line" used in error messages.

    Returns:
      (inputs, labels) uint8 [900].

    Raises:
      MazeDataError: with `where` in the message.
    """
    for field, text in (("question", question), ("answer", answer)):
        if len(text) != SEQ_LEN:
            raise MazeDataError(f"{where}: {field} has {len(text)} characters, expected {SEQ_LEN}")
        bad = sorted(set(text) - set(CHARSET))
        if bad:
            raise MazeDataError(f"{where}: {field} has characters {bad} outside {CHARSET!r}")
    q, a = encode(question), encode(answer)
    if (q == PATH).any():
        raise MazeDataError(f"{where}: question already contains path cells 'o'")
    if (q == START).sum() != 1 or (q == GOAL).sum() != 1:
        raise MazeDataError(f"{where}: question needs exactly one 'S' and one 'G'")
    for tok, label in ((WALL, "walls"), (START, "start"), (GOAL, "goal")):
        if ((q == tok) != (a == tok)).any():
            raise MazeDataError(f"{where}: answer {label} differ from the question's")
    if ((a == PATH) & (q != OPEN)).any():
        raise MazeDataError(f"{where}: answer draws path cells 'o' on non-open cells")
    return q, a


def parse_csv(text: str, file: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses and validates a Maze-Hard CSV (header source,question,answer,rating).

    Returns:
      (inputs, labels) uint8 [N, 900].
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != CSV_HEADER:
        raise MazeDataError(f"{file}:1: header {header} is not {CSV_HEADER}")
    inputs, labels = [], []
    for row in reader:
        where = f"{file}:{reader.line_num}"
        if len(row) != 4:
            raise MazeDataError(f"{where}: expected 4 columns, got {len(row)}")
        q, a = validate_pair(row[1], row[2], where)
        inputs.append(q)
        labels.append(a)
    if not inputs:
        raise MazeDataError(f"{file}: no rows")
    return np.stack(inputs), np.stack(labels)


def bfs_distances(open_mask: np.ndarray, start: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """4-neighbour BFS over `open_mask` [30, 30] from `start`.

    Returns:
      (dist int32 [30, 30] with -1 = unreachable, parent int32 [30, 30] flat index, -1 = none); the
      parent is the first neighbour in the fixed order up, left, right, down that reached the cell.
    """
    dist = np.full(open_mask.shape, -1, np.int32)
    parent = np.full(open_mask.shape, -1, np.int32)
    h, w = open_mask.shape
    dist[start] = 0
    queue = collections.deque([start])
    while queue:
        r, c = queue.popleft()
        d = dist[r, c] + 1
        for dr, dc in _MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and open_mask[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = d
                parent[nr, nc] = r * w + c
                queue.append((nr, nc))
    return dist, parent


def solve(question: np.ndarray) -> np.ndarray:
    """Draws a BFS shortest S->G path ('o' on the cells strictly between S and G).

    Args:
      question: uint8 [900] ids.

    Returns:
      uint8 [900] answer ids.

    Raises:
      ValueError: when G is unreachable.
    """
    grid = question.reshape(GRID_SIZE, GRID_SIZE)
    start = tuple(int(x) for x in np.argwhere(grid == START)[0])
    goal = tuple(int(x) for x in np.argwhere(grid == GOAL)[0])
    dist, parent = bfs_distances(grid != WALL, start)
    if dist[goal] < 0:
        raise ValueError("goal unreachable")
    answer = grid.copy()
    cell = parent[goal]
    while cell != start[0] * GRID_SIZE + start[1]:
        answer.flat[cell] = PATH
        cell = parent.flat[cell]
    return answer.reshape(-1)


def _perfect_maze(rng: np.random.Generator) -> np.ndarray:
    """Open-cell mask of a random spanning tree (randomised Kruskal) over the even lattice."""
    n = GRID_SIZE // 2  # 15 cells per side at coordinates 0, 2, ..., 28
    open_mask = np.zeros((GRID_SIZE, GRID_SIZE), bool)
    open_mask[0 : 2 * n : 2, 0 : 2 * n : 2] = True
    ids = np.arange(n * n).reshape(n, n)
    edges = np.concatenate(
        [
            np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], 1),  # horizontal neighbours
            np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], 1),  # vertical neighbours
        ]
    )
    edges = edges[rng.permutation(len(edges))]
    root = list(range(n * n))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            root[ra] = rb
            (ar, ac), (br, bc) = divmod(a, n), divmod(b, n)
            open_mask[ar + br, ac + bc] = True  # the wall cell between the two lattice cells
    return open_mask


def generate_maze(
    rng: np.random.Generator, min_path_length: int = DEFAULT_MIN_PATH_LENGTH, max_tries: int = 1000
) -> tuple[np.ndarray, np.ndarray, int]:
    """One maze whose unique S->G path has more than `min_path_length` moves.

    S is a uniform lattice cell; G is uniform among the lattice cells farther than the threshold
    (a new maze is drawn when there is none).

    Returns:
      (question ids [900], answer ids [900], path length in moves).
    """
    for _ in range(max_tries):
        open_mask = _perfect_maze(rng)
        cells = _LATTICE_CELLS
        start = tuple(int(x) for x in cells[rng.integers(len(cells))])
        dist, _ = bfs_distances(open_mask, start)
        far = cells[dist[cells[:, 0], cells[:, 1]] > min_path_length]
        if not len(far):
            continue
        goal = tuple(int(x) for x in far[rng.integers(len(far))])
        grid = np.where(open_mask, OPEN, WALL).astype(np.uint8)
        grid[start], grid[goal] = START, GOAL
        question = grid.reshape(-1)
        return question, solve(question), int(dist[goal])
    raise RuntimeError(f"no maze with a path longer than {min_path_length} in {max_tries} tries")


def generate(
    num: int, seed: int, split_id: int, min_path_length: int = DEFAULT_MIN_PATH_LENGTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`num` mazes; row i is drawn from `default_rng([seed, split_id, i])` alone.

    Returns:
      (inputs [num, 900], labels [num, 900], path lengths [num]).
    """
    qs, ans, lens = [], [], []
    for i in range(num):
        q, a, n = generate_maze(np.random.default_rng([seed, split_id, i]), min_path_length)
        qs.append(q)
        ans.append(a)
        lens.append(n)
    empty = np.zeros((0, SEQ_LEN), np.uint8)
    return (
        np.stack(qs) if qs else empty,
        np.stack(ans) if ans else empty,
        np.array(lens, np.int32),
    )
