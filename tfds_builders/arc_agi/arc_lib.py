"""Pure-numpy grid math, loading, augmentation and encoding for the ARC-AGI builder.

Follows the reference `dataset/build_arc_dataset.py`:

* token encoding on a 30x30 canvas: 0 = pad, 1 = EOS, colours 0..9 -> 2..11; EOS on the row just below
  and the column just right of the grid, only inside the canvas, never on the diagonal corner;
* augmentation: dihedral transform `trans_id` ~ U{0..7} and a colour permutation keeping 0 fixed,
  applied as ``dihedral(mapping[grid], trans_id)``; augmented puzzles equal (as a multiset of example
  pairs) to one already kept are rejected, with at most ``5 * num_aug`` trials;
* translation augmentation (train split only): one random example per puzzle keeps offset (0, 0), the
  others get random offsets shared by input and output.

Randomness differs from the reference on purpose (it uses one global `np.random.seed(42)` stream): every
task owns `np.random.Generator`s seeded from ``(seed, purpose, subset index, task index)``, so a task's
records do not depend on the other tasks, and trials are drawn in fixed-size chunks, so the augmentations
kept for ``num_aug = a`` are a prefix of those kept for any larger ``num_aug`` (the original, un-augmented
puzzle is always first).

The grid maths (dihedral transforms, colour permutations, the canvas encoding and its crop) live in
`trm_tf.tasks` (`grids` and `arc`), shared with the evaluator that undoes the augmentations.

Loading and validating the task files is `arc_loading`. No TensorFlow here:
everything is numpy plus `etils.epath` for reading the JSON files (gs:// works).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from trm_tf.tasks.arc import (
    COLOR_OFFSET,
    EOS_ID,
    GRID_SIZE,
    IDENTITY_COLOR_MAP,
    NUM_COLORS,
    PAD_ID,
    SEQ_LEN,
    encode_grid,
)
from trm_tf.tasks.grids import TRANSPOSING_IDS, dihedral

from .arc_loading import Task

NAME_SEPARATOR = "|||"
AUGMENT_RETRIES_FACTOR = 5

# Seed "purposes" so that the augmentation and translation streams of one task are independent.
_AUG_STREAM = 0
_TRANSLATION_STREAM = 1
_TRIAL_CHUNK = 64


# ---------------------------------------------------------------------------------------------------
# Grid math
# ---------------------------------------------------------------------------------------------------


def augmented_name(name: str, trans_id: int, color_map: np.ndarray) -> str:
    """The reference's augmented puzzle name ``"{name}|||t{tid}|||{10-digit mapping}"``."""
    digits = "".join(str(int(c)) for c in color_map)
    return f"{name}{NAME_SEPARATOR}t{trans_id}{NAME_SEPARATOR}{digits}"


def parse_augmented_name(name: str) -> tuple[str, int, np.ndarray]:
    """Inverse of `augmented_name`; an un-augmented name gives (name, 0, identity map)."""
    if NAME_SEPARATOR not in name:
        return name, 0, IDENTITY_COLOR_MAP.copy()
    base, tid, digits = name.rsplit(NAME_SEPARATOR, 2)
    return base, int(tid[1:]), np.array([int(d) for d in digits], np.uint8)


# ---------------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------------


def _task_rng(seed: int, stream: int, task: Task) -> np.random.Generator:
    return np.random.default_rng([seed, stream, task.subset_index, task.task_index])


def choose_augmentations(task: Task, num_aug: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Picks the task's distinct augmentations (the original first).

    A candidate (trans_id, colour map) is kept when the multiset of its transformed (input, output)
    pairs, over all of the task's pairs (demonstrations and tests), differs from every kept one.

    Args:
      task: the task.
      num_aug: wanted number of augmented copies (besides the original).
      seed: config seed.

    Returns:
      (trans_ids int32 [K], color_maps uint8 [K, 10], trials), K <= num_aug + 1, row 0 = identity.
    """
    tids = [0]
    maps = [IDENTITY_COLOR_MAP]
    if num_aug <= 0:
        return np.array(tids, np.int32), np.stack(maps), 0
    key = _pairs_multiset_key(task)
    seen = {key(0, IDENTITY_COLOR_MAP)}
    rng = _task_rng(seed, _AUG_STREAM, task)
    max_trials = AUGMENT_RETRIES_FACTOR * num_aug
    trials = 0
    base = np.tile(np.arange(1, NUM_COLORS, dtype=np.uint8), (_TRIAL_CHUNK, 1))
    while trials < max_trials and len(tids) < num_aug + 1:
        # Fixed-size chunks keep the candidate stream independent of num_aug (prefix property).
        chunk_t = rng.integers(0, 8, size=_TRIAL_CHUNK)
        chunk_p = rng.permuted(base, axis=1)
        for t, perm in zip(chunk_t, chunk_p):
            if trials >= max_trials or len(tids) >= num_aug + 1:
                break
            trials += 1
            cmap = np.concatenate([[0], perm]).astype(np.uint8)
            k = key(int(t), cmap)
            if k not in seen:
                seen.add(k)
                tids.append(int(t))
                maps.append(cmap)
    return np.array(tids, np.int32), np.stack(maps), trials


def _pairs_multiset_key(task: Task):
    """key(trans_id, colour map) -> the multiset of the task's augmented (input, output) pairs, as a
    sorted tuple of bytes; the transformed grids are computed once per transform, not per candidate."""
    grids = [g for pair in task.train_pairs + task.test_pairs for g in pair]
    # Per transform: the concatenated flat grids plus per-grid (shape header, start, end).
    flat_by_t = []
    parts_by_t = []
    for t in range(8):
        tg = [np.ascontiguousarray(dihedral(g, t)) for g in grids]
        flat_by_t.append(np.concatenate([g.reshape(-1) for g in tg]))
        bounds = np.cumsum([0] + [g.size for g in tg])
        parts_by_t.append([(bytes(g.shape), bounds[i], bounds[i + 1]) for i, g in enumerate(tg)])

    def key(t: int, cmap: np.ndarray) -> tuple[bytes, ...]:
        data = cmap[flat_by_t[t]].tobytes()
        parts = parts_by_t[t]
        # One bytes string per (input, output) pair; sorting makes it a multiset like the reference.
        pairs = [
            parts[2 * i][0]
            + data[parts[2 * i][1] : parts[2 * i][2]]
            + b"|"
            + parts[2 * i + 1][0]
            + data[parts[2 * i + 1][1] : parts[2 * i + 1][2]]
            for i in range(len(parts) // 2)
        ]
        return tuple(sorted(pairs))

    return key


def encode_puzzles(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    trans_ids: np.ndarray,
    color_maps: np.ndarray,
    offsets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes every augmented copy of a list of pairs, vectorised over the copies.

    Args:
      pairs: n (input, output) grids of the original puzzle.
      trans_ids: [K] dihedral ids.
      color_maps: [K, 10] colour permutations.
      offsets: optional int [K, n, 2] top-left offsets (shared by input and output); None = (0, 0).

    Returns:
      (inputs, labels), each uint8 [K, n, 900].
    """
    k_total, n = len(trans_ids), len(pairs)
    out = np.zeros((k_total, n, 2, GRID_SIZE, GRID_SIZE), np.uint8)
    # Token lookup per copy: pad and EOS stay, colour c -> map[c] + 2.
    luts = np.concatenate(
        [np.tile(np.array([PAD_ID, EOS_ID], np.uint8), (k_total, 1)), color_maps + COLOR_OFFSET], 1
    )
    for t in np.unique(trans_ids):
        sel = np.nonzero(trans_ids == t)[0]
        canvases = np.stack(
            [
                np.stack([encode_grid(np.ascontiguousarray(dihedral(g, int(t)))) for g in pair])
                for pair in pairs
            ]
        ).reshape(n, 2, GRID_SIZE, GRID_SIZE)
        # Per-copy lookup: lut row k indexes the offset-0 canvases of transform t.
        out[sel] = luts[sel][np.arange(len(sel))[:, None, None, None, None], canvases[None]]
    if offsets is not None:
        shifted = np.nonzero((offsets != 0).any(-1))
        for k, e in zip(*shifted):
            r, c = offsets[k, e]
            moved = np.zeros((2, GRID_SIZE, GRID_SIZE), np.uint8)
            # Shifting the offset-0 canvas is exact: the offset keeps the grid inside the canvas, and
            # an EOS line pushed to index 30 falls off, as the reference's inside-the-canvas rule wants.
            moved[:, r:, c:] = out[k, e, :, : GRID_SIZE - r, : GRID_SIZE - c]
            out[k, e] = moved
    flat = out.reshape(k_total, n, 2, SEQ_LEN)
    return flat[:, :, 0], flat[:, :, 1]


def translation_offsets(
    task: Task,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    trans_ids: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Random train-split offsets: per copy one random pair stays at (0, 0), others are shifted.

    Args:
      task: the task (seeds the stream).
      pairs: the pairs that go to the train split (un-augmented).
      trans_ids: [K] dihedral ids of the copies (transposing ones swap height and width).
      seed: config seed.

    Returns:
      int32 [K, n, 2] offsets; row k depends only on k (not on K).
    """
    k_total, n = len(trans_ids), len(pairs)
    rng = _task_rng(seed, _TRANSLATION_STREAM, task)
    u = rng.random((k_total, 1 + 2 * n))
    hw = np.array([[max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])] for a, b in pairs])
    swap = np.isin(trans_ids, TRANSPOSING_IDS)  # transforms that exchange rows and columns
    hw_k = np.where(swap[:, None, None], hw[None, :, ::-1], hw[None])  # [K, n, 2]
    span = GRID_SIZE - hw_k + 1  # number of admissible offsets per axis
    offsets = np.floor(u[:, 1:].reshape(k_total, n, 2) * span).astype(np.int32)
    keep = np.floor(u[:, 0] * n).astype(np.int64)
    offsets[np.arange(k_total), keep] = 0
    return offsets


# ---------------------------------------------------------------------------------------------------
# Whole-dataset plan
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TaskPlan:
    """Everything needed to emit one task's records."""

    task: Task
    trans_ids: np.ndarray  # [K]
    color_maps: np.ndarray  # [K, 10]
    identifiers: np.ndarray  # [K] int32, puzzle identifiers (>= 1)
    is_test_task: bool
    trials: int


def plan_dataset(
    tasks: Sequence[Task], test_subset: str, num_aug: int, seed: int
) -> tuple[list[TaskPlan], int]:
    """Chooses augmentations and assigns puzzle identifiers (0 = blank, then train-split order).

    Returns:
      (plans, num_puzzle_identifiers including the blank).
    """
    plans = []
    next_id = 1
    for task in tasks:
        tids, maps, trials = choose_augmentations(task, num_aug, seed)
        ids = np.arange(next_id, next_id + len(tids), dtype=np.int32)
        next_id += len(tids)
        plans.append(TaskPlan(task, tids, maps, ids, task.subset == test_subset, trials))
    return plans, next_id


def split_pairs(plan: TaskPlan, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Routing (docs/model.md#arc-agi): a test-subset task's demonstrations go to train and its test pairs to
    test; any other task sends all its pairs to train."""
    task = plan.task
    if split == "train":
        return task.train_pairs if plan.is_test_task else task.train_pairs + task.test_pairs
    return task.test_pairs if plan.is_test_task else []


def pair_test_indices(plan: TaskPlan, split: str) -> np.ndarray:
    """Per routed pair: its index among the task's test pairs, or -1 for a demonstration pair."""
    task = plan.task
    if split == "test":
        return np.arange(len(task.test_pairs), dtype=np.int32)
    n_train = len(task.train_pairs)
    if plan.is_test_task:
        return np.full(n_train, -1, np.int32)
    return np.concatenate([np.full(n_train, -1), np.arange(len(task.test_pairs))]).astype(np.int32)


def encode_task_split(
    plan: TaskPlan, split: str, seed: int, translate: bool
) -> dict[str, np.ndarray] | None:
    """All records of one task in one split, as arrays of shape [K, n, ...].

    Returns:
      None when the task contributes nothing to the split, else a dict with inputs, labels
      [K, n, 900] uint8, translation [K, n, 2] int32 and test_index [n] int32.
    """
    pairs = split_pairs(plan, split)
    if not pairs:
        return None
    offsets = None
    if split == "train" and translate:
        offsets = translation_offsets(plan.task, pairs, plan.trans_ids, seed)
    inputs, labels = encode_puzzles(pairs, plan.trans_ids, plan.color_maps, offsets)
    if offsets is None:
        offsets = np.zeros((len(plan.trans_ids), len(pairs), 2), np.int32)
    return {
        "inputs": inputs,
        "labels": labels,
        "translation": offsets,
        "test_index": pair_test_indices(plan, split),
    }


def split_statistics(plans: Sequence[TaskPlan], split: str) -> dict[str, float]:
    """Groups, puzzles and examples of a split (without encoding anything)."""
    groups = puzzles = examples = 0
    for plan in plans:
        n = len(split_pairs(plan, split))
        if n:
            groups += 1
            puzzles += len(plan.trans_ids)
            examples += n * len(plan.trans_ids)
    return {"groups": groups, "puzzles": puzzles, "examples": examples}


def test_puzzles_json(plans: Sequence[TaskPlan]) -> dict:
    """The un-augmented test-subset tasks in the reference's `test_puzzles.json` layout
    (task -> {"train": [...], "test": [{"input", "output"}...]}), used as evaluator ground truth."""
    out = {}
    for plan in plans:
        if not plan.is_test_task:
            continue
        task = plan.task
        out[task.name] = {
            "train": [{"input": a.tolist(), "output": b.tolist()} for a, b in task.train_pairs],
            "test": [{"input": a.tolist(), "output": b.tolist()} for a, b in task.test_pairs],
        }
    return out
