"""Loading and validation of the ARC-AGI Kaggle "combined" files: `arc-agi_<subset>_challenges.json` and
`arc-agi_<subset>_solutions.json`, read through `etils.epath` (gs:// works), every grid checked.

The builder reads the tasks here (`load_tasks`); `arc_lib` plans and encodes them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
from etils import epath

from trm_tf.tasks.arc import GRID_SIZE


class ArcDataError(ValueError):
    """A task file is missing or holds a malformed grid (the message names file and task)."""


def grid_from_json(value, *, file: str, task_id: str, where: str) -> np.ndarray:
    """Validates one JSON grid (list of equal-length rows of ints 0..9, at most 30x30).

    Raises:
      ArcDataError: naming the file, the task id and the position of the grid in the task.
    """
    prefix = f"{file}: task {task_id!r}, {where}"
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise ArcDataError(f"{prefix}: a grid must be a non-empty list of rows")
    widths = {len(r) for r in value}
    if len(widths) != 1 or 0 in widths:
        raise ArcDataError(f"{prefix}: grid is not rectangular (row lengths {sorted(widths)})")
    try:
        arr = np.array(value, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise ArcDataError(f"{prefix}: grid holds non-integer values ({e})") from None
    if arr.ndim != 2:
        raise ArcDataError(f"{prefix}: grid must be 2-D, got shape {arr.shape}")
    if arr.shape[0] > GRID_SIZE or arr.shape[1] > GRID_SIZE:
        raise ArcDataError(f"{prefix}: grid is {arr.shape[0]}x{arr.shape[1]}, larger than 30x30")
    if arr.min() < 0 or arr.max() > 9:
        raise ArcDataError(f"{prefix}: colour values outside 0..9 ({arr.min()}..{arr.max()})")
    return arr.astype(np.uint8)


@dataclasses.dataclass
class Task:
    """One ARC task with validated grids.

    Attributes:
      name: task id.
      subset: the subset (file) it comes from.
      subset_index: position of the subset in the config's subset list (seeds the task's RNG).
      task_index: position of the task in its file (seeds the task's RNG).
      train_pairs: demonstration (input, output) pairs.
      test_pairs: test (input, output) pairs, outputs from the solutions file.
    """

    name: str
    subset: str
    subset_index: int
    task_index: int
    train_pairs: list[tuple[np.ndarray, np.ndarray]]
    test_pairs: list[tuple[np.ndarray, np.ndarray]]


def _read_json(path: epath.Path):
    if not path.exists():
        raise ArcDataError(
            f"{path}: file not found; the manual directory must hold the Kaggle 'combined' files "
            "arc-agi_<subset>_challenges.json and arc-agi_<subset>_solutions.json"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArcDataError(f"{path}: invalid JSON ({e})") from None


def load_subset(directory, subset: str, subset_index: int) -> list[Task]:
    """Loads and validates `arc-agi_<subset>_{challenges,solutions}.json` from `directory`.

    Args:
      directory: folder (local or gs://) holding the Kaggle combined layout.
      subset: e.g. "training", "evaluation", "concept", "training2", "evaluation2".
      subset_index: index of this subset in the config (used for seeding).

    Returns:
      Tasks in file order.

    Raises:
      ArcDataError: a missing file, a task without solutions, or a malformed grid.
    """
    directory = epath.Path(directory)
    ch_path = directory / f"arc-agi_{subset}_challenges.json"
    so_path = directory / f"arc-agi_{subset}_solutions.json"
    challenges = _read_json(ch_path)
    solutions = _read_json(so_path)
    tasks = []
    for task_index, (name, task) in enumerate(challenges.items()):
        if not isinstance(task, dict) or "train" not in task or "test" not in task:
            raise ArcDataError(f"{ch_path}: task {name!r} lacks 'train' or 'test'")
        if name not in solutions:
            raise ArcDataError(f"{so_path}: no solutions for task {name!r}")
        sols = solutions[name]
        if len(sols) != len(task["test"]):
            raise ArcDataError(
                f"{so_path}: task {name!r} has {len(sols)} solutions for {len(task['test'])} tests"
            )

        train_pairs, test_pairs = _task_pairs(name, task, sols, ch_path, so_path)
        tasks.append(Task(name, subset, subset_index, task_index, train_pairs, test_pairs))
    return tasks


def _task_pairs(name: str, task: dict, sols: list, ch_path, so_path):
    """The validated (input, output) demonstration and test pairs of one task."""

    def grid(value, file, where):
        return grid_from_json(value, file=str(file), task_id=name, where=where)

    train_pairs = [
        (
            grid(ex.get("input"), ch_path, f"train[{i}].input"),
            grid(ex.get("output"), ch_path, f"train[{i}].output"),
        )
        for i, ex in enumerate(task["train"])
    ]
    test_pairs = [
        (
            grid(ex.get("input"), ch_path, f"test[{i}].input"),
            grid(sols[i], so_path, f"solution[{i}]"),
        )
        for i, ex in enumerate(task["test"])
    ]
    return train_pairs, test_pairs


def load_tasks(directory, subsets: Sequence[str]) -> list[Task]:
    """Loads every subset in order; task names must be unique across the subsets."""
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for i, subset in enumerate(subsets):
        for task in load_subset(directory, subset, i):
            if task.name in seen:
                raise ArcDataError(
                    f"task {task.name!r} appears in both subset {seen[task.name]!r} and {subset!r}"
                )
            seen[task.name] = subset
            tasks.append(task)
    return tasks
