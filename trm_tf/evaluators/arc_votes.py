"""ARC votes: the store of pass@K majority voting and its Kaggle submission (after the reference
`evaluators/arc.py`). The run's evaluator around it is `trm_tf.evaluators.arc.ARCEvaluator`.

For each evaluated row the prediction (and the input) is cropped to the largest top-left rectangle of
colour tokens, the augmentation is undone (inverse dihedral, then inverse colour permutation), and the
resulting grid is a vote for its (task, test pair). Equal grids are pooled: their count and the mean of
sigmoid(q_halt) (computed in float64 as the reference does) rank them, (count, mean q) descending, so it
is a majority vote with a confidence tie-break. pass@K for a test pair is 1 when the true output is among
the top K; a task scores the fraction of its test pairs passed; the metric is the mean over tasks.

Differences from the reference, on purpose:

* keys are (task name, test index) taken from the dataset's `task_name` / `test_index` features instead
  of (name, hash of the inverse-transformed input); the inverse-transformed input is still computed and
  checked for consistency (`ARC/input_mismatches` counts disagreements, which would reveal a transform
  bug);
* a store is per evaluation: `reset()` (call it before each evaluation) clears it. The reference never
  clears it (`aggregated_voting=True`), so later evaluations also count the votes of earlier checkpoints;
  pass `aggregated_voting=True` to reproduce that quirk. A run reports both numbers
  (`trm_tf.evaluators.arc`): this checkpoint's pass@K and pass@K pooled over the run's evaluations;
* remaining ties on (count, mean q) are broken by the grid's text (the reference keeps arrival order,
  which depends on batch and host order);
* a test pair with no prediction scores 0 (as in the reference) but still gets a submission entry
  (`[[0]]` attempts) so the submission stays aligned with the test pairs;
* multi-host: `state()` gives a JSON-serialisable summary per host, `merge(states)` on the chief adds
  them (the reference gathers with torch.distributed).

Ground truth: the ARC builder writes `test_puzzles.json` (the un-augmented test tasks with solutions)
next to `dataset_info.json`; `load_ground_truth(tfds.builder(name, data_dir=...).data_dir)` reads it
(works on gs:// via tf.io.gfile), as does a Kaggle `arc-agi_<subset>_solutions.json` path.

The grid math (dihedral transforms and their inverses, the colour-permutation inverse, the crop of the
largest top-left colour rectangle) comes from `trm_tf.tasks`, the same code the ARC builder augments and
encodes with, so undoing an augmentation cannot drift from applying it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from trm_tf.tasks.arc import TEST_PUZZLES_FILE, crop
from trm_tf.tasks.grids import inverse_augment

PASS_KS = (1, 2, 5, 10, 100, 1000)


def grid_key(grid: np.ndarray) -> str:
    """Canonical text of a grid ("rows;" of digits), hashable and JSON-friendly ("" for 0x0)."""
    g = np.asarray(grid)
    if g.size == 0:
        return ""
    # Vectorised: digits as ASCII plus a ';' column, one bytes -> str conversion per grid.
    buf = np.full((g.shape[0], g.shape[1] + 1), ord(";"), np.uint8)
    buf[:, :-1] = g.astype(np.uint8) + ord("0")
    return buf.tobytes()[:-1].decode("ascii")


def key_grid(key: str) -> list[list[int]]:
    """Inverse of `grid_key`, as nested lists."""
    return [[int(c) for c in row] for row in key.split(";")] if key else []


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 1.0 / (1.0 + np.exp(-x))


def _decode_name(name) -> str:
    return name.decode("utf-8") if isinstance(name, bytes | np.bytes_) else str(name)


def load_ground_truth(path: str) -> dict[str, list[list[list[int]]]]:
    """Reads test outputs as ``task -> [output grid per test pair]``.

    Args:
      path: a dataset version directory holding `test_puzzles.json` (e.g.
        `tfds.builder("arc_agi/arc1_aug1000", data_dir=...).data_dir`), that file itself (layout
        task -> {"test": [{"input", "output"}...]}), or a Kaggle `*_solutions.json` (task -> [grids]).

    Returns:
      Dict task -> list of output grids (nested lists).
    """
    if tf.io.gfile.isdir(path):
        path = path.rstrip("/") + "/" + TEST_PUZZLES_FILE
    with tf.io.gfile.GFile(path, "r") as f:
        data = json.load(f)
    out = {}
    for task, value in data.items():
        if isinstance(value, dict):
            out[task] = [pair["output"] for pair in value["test"]]
        else:
            out[task] = list(value)
    return out


class ARCVoteStore:
    """The votes of augmented predictions per test pair: majority vote, pass@K and Kaggle submission.

    Usage per evaluation (each host): ``votes.reset()``, ``votes.update(batch)`` for every eval batch,
    then on the chief ``votes.merge(all_hosts_states)`` (or nothing on one host) and
    ``votes.result(load_ground_truth(dataset_dir))``.
    """

    def __init__(
        self,
        pass_ks: Sequence[int] = PASS_KS,
        submission_k: int = 2,
        aggregated_voting: bool = False,
        test_task_names: Sequence[str] | None = None,
    ):
        """Builds an empty store.

        Args:
          pass_ks: the K of the `ARC/pass@K` metrics.
          submission_k: attempts per test pair in the submission (Kaggle: 2).
          aggregated_voting: keep votes across `reset()` calls (the reference's behaviour).
          test_task_names: task name of each test-split group (`list(load_ground_truth(dir))`: the
            builder writes test_puzzles.json in test-group order). Lets batches carry the int `group`
            instead of the string `task_name`, which cannot be fed to a TPU.
        """
        self.pass_ks = tuple(pass_ks)
        self.submission_k = submission_k
        self.aggregated_voting = aggregated_voting
        self.test_task_names = None if test_task_names is None else list(test_task_names)
        self._votes: dict[tuple[str, int], dict[str, list[float]]] = {}
        self._inputs: dict[tuple[str, int], str] = {}
        self._input_mismatches = 0

    def reset(self) -> None:
        """Starts a new evaluation (no-op with aggregated_voting=True, like the reference)."""
        if not self.aggregated_voting:
            self._votes = {}
            self._inputs = {}
            self._input_mismatches = 0

    def update(self, batch: Mapping[str, np.ndarray]) -> None:
        """Adds one eval batch.

        Args:
          batch: numpy arrays with `inputs` [B, 900], `preds` [B, 900] (argmax tokens), `q_halt`
            [B] (halting logits), `task_name` [B] (bytes/str; or `group` [B] int with
            `test_task_names` given), `test_index` [B], `transform_id` [B],
            `color_map` [B, 10] and optionally `mask` [B] bool (False = padding row, skipped).
            Rows with test_index < 0 (demonstration pairs) are skipped.
        """
        preds = np.asarray(batch["preds"])
        n = preds.shape[0]
        mask = np.ones(n, bool) if batch.get("mask") is None else np.asarray(batch["mask"], bool)
        q = _sigmoid64(batch["q_halt"])
        inputs = np.asarray(batch["inputs"])
        if "task_name" in batch:
            names = np.asarray(batch["task_name"]).reshape(-1)
        elif self.test_task_names is not None:
            names = [self.test_task_names[int(g)] for g in np.asarray(batch["group"]).reshape(-1)]
        else:
            raise KeyError("batch needs `task_name`, or `group` with test_task_names set")
        test_index = np.asarray(batch["test_index"]).reshape(-1)
        trans = np.asarray(batch["transform_id"]).reshape(-1)
        cmaps = np.asarray(batch["color_map"])
        for i in range(n):
            if not mask[i] or test_index[i] < 0:
                continue
            key = (_decode_name(names[i]), int(test_index[i]))
            inp = grid_key(inverse_augment(crop(inputs[i]), trans[i], cmaps[i]))
            seen = self._inputs.setdefault(key, inp)
            if seen != inp:
                self._input_mismatches += 1
            pred = grid_key(inverse_augment(crop(preds[i]), trans[i], cmaps[i]))
            stats = self._votes.setdefault(key, {}).setdefault(pred, [0, 0.0])
            stats[0] += 1
            stats[1] += float(q[i])

    def state(self) -> dict:
        """JSON-serialisable summary of this host's votes (counts and q sums per distinct grid)."""
        return {
            "votes": [[task, idx, preds] for (task, idx), preds in self._votes.items()],
            "inputs": [[task, idx, grid] for (task, idx), grid in self._inputs.items()],
            "input_mismatches": self._input_mismatches,
        }

    def merge(self, states: Iterable[dict]) -> None:
        """Adds other hosts' `state()` dicts into this store (call on the chief)."""
        for st in states:
            for task, idx, preds in st["votes"]:
                dest = self._votes.setdefault((task, int(idx)), {})
                for pred, (count, qsum) in preds.items():
                    stats = dest.setdefault(pred, [0, 0.0])
                    stats[0] += int(count)
                    stats[1] += float(qsum)
            for task, idx, grid in st["inputs"]:
                seen = self._inputs.setdefault((task, int(idx)), grid)
                if seen != grid:
                    self._input_mismatches += 1
            self._input_mismatches += int(st["input_mismatches"])

    def ranked(self, task: str, test_index: int) -> list[tuple[str, int, float]]:
        """Distinct predictions of one test pair as (grid key, count, mean q), best first."""
        preds = self._votes.get((task, test_index), {})
        items = [(k, int(c), s / c) for k, (c, s) in preds.items()]
        # Sort by grid text first, then stably by (count, mean q) descending: deterministic ties.
        items.sort(key=lambda x: x[0])
        items.sort(key=lambda x: (x[1], x[2]), reverse=True)
        return items

    def result(self, ground_truth: Mapping[str, Sequence]) -> dict[str, float]:
        """pass@K metrics.

        Args:
          ground_truth: task -> list of true output grids (see `load_ground_truth`); every task in it
            counts, predicted or not.

        Returns:
          {"ARC/pass@K": mean over tasks of the fraction of test pairs whose true output is in the
          top K, ..., "ARC/input_mismatches": count, "ARC/num_tasks": number of tasks}.
        """
        totals = np.zeros(len(self.pass_ks))
        for task, outputs in ground_truth.items():
            passed = np.zeros(len(self.pass_ks))
            for idx, out in enumerate(outputs):
                truth = grid_key(np.asarray(out))
                keys = [k for k, _, _ in self.ranked(task, idx)]
                for j, k in enumerate(self.pass_ks):
                    passed[j] += truth in keys[:k]
            totals += passed / max(len(outputs), 1)
        n = max(len(ground_truth), 1)
        metrics = {f"ARC/pass@{k}": float(totals[j] / n) for j, k in enumerate(self.pass_ks)}
        metrics["ARC/input_mismatches"] = float(self._input_mismatches)
        metrics["ARC/num_tasks"] = float(len(ground_truth))
        return metrics

    def submission(self, ground_truth: Mapping[str, Sequence] | None = None) -> dict:
        """Kaggle submission dict ``task -> [{"attempt_1": grid, "attempt_2": grid}, ...]``.

        Args:
          ground_truth: optional task -> outputs, used only to list every task and its number of test
            pairs (so unpredicted pairs still get an entry); without it, the predicted pairs are listed.
        """
        if ground_truth is not None:
            pairs = {task: len(outs) for task, outs in ground_truth.items()}
        else:
            pairs = {}
            for task, idx in self._votes:
                pairs[task] = max(pairs.get(task, 0), idx + 1)
        out = {}
        for task in sorted(pairs):
            entries = []
            for idx in range(pairs[task]):
                grids = [key_grid(k) for k, _, _ in self.ranked(task, idx)[: self.submission_k]]
                if not grids:
                    grids = [[[0]]]
                while len(grids) < self.submission_k:  # pad with the best attempt, as the reference
                    grids.append(grids[0])
                entries.append({f"attempt_{j + 1}": g for j, g in enumerate(grids)})
            out[task] = entries
        return out

    def write_submission(
        self, path: str, ground_truth: Mapping[str, Sequence] | None = None
    ) -> None:
        """Writes `submission()` as JSON to `path` (local or gs://)."""
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(self.submission(ground_truth), f)
