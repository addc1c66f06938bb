"""Token, exact and per-supervision-step accuracy of an evaluation (reference `evaluate()`).

Reads only the eval step's sums (`summed`: no per-row field travels), so on its own an evaluation batch
brings only these sums to the host. The life cycle is the evaluator interface's
(`trm_tf.evaluators.base`).
"""

from __future__ import annotations

import numpy as np

from trm_tf import distribute
from trm_tf.evaluators.base import Evaluator


class AccuracyEvaluator(Evaluator):
    """Sums of the eval step's metrics, normalised per example (losses included, as the reference)."""

    name = "accuracy"
    summed = ("sums", "exact_per_step", "token_per_step")
    headline = "exact_accuracy"

    def __init__(self, halt_max_steps: int):
        self.halt_max_steps = int(halt_max_steps)
        self.begin()

    @classmethod
    def from_config(cls, config, spec, halt_max_steps: int) -> AccuracyEvaluator:
        return cls(halt_max_steps)

    def begin(self) -> None:
        self.totals: dict[str, float] = {}
        self.exact_steps = np.zeros(self.halt_max_steps)
        self.token_steps = np.zeros(self.halt_max_steps)

    def update(self, out: dict) -> None:
        # Replica by replica, in float64 (each replica's sums are float32): the same additions in the
        # same order as adding each replica's outputs separately, so the totals do not depend on packing.
        for r in range(len(out["exact_per_step"])):
            for k, v in out["sums"].items():
                self.totals[k] = self.totals.get(k, 0.0) + float(v[r])
            self.exact_steps += out["exact_per_step"][r]
            self.token_steps += out["token_per_step"][r]

    def reduce(self, strategy) -> None:
        keys = sorted(self.totals)
        vec = np.concatenate([[self.totals[k] for k in keys], self.exact_steps, self.token_steps])
        total = distribute.sum_over_workers(strategy, vec)
        n, s = len(keys), self.halt_max_steps
        self.totals = dict(zip(keys, (float(x) for x in total[:n])))
        self.exact_steps, self.token_steps = total[n : n + s], total[n + s :]

    def result(self) -> dict[str, float]:
        count = max(self.totals.get("count", 0.0), 1.0)
        metrics = {k: v / count for k, v in self.totals.items() if k != "count"}
        metrics["num_examples"] = self.totals.get("count", 0.0)
        for k in range(self.halt_max_steps):
            metrics[f"exact_accuracy/step_{k + 1}"] = float(self.exact_steps[k] / count)
            metrics[f"accuracy/step_{k + 1}"] = float(self.token_steps[k] / count)
        return metrics

    def log_line(self, metrics: dict) -> str:
        return "exact_accuracy {:.4f}, accuracy {:.4f}, q_halt_accuracy {:.4f}".format(
            *(
                metrics.get(k, float("nan"))
                for k in ("exact_accuracy", "accuracy", "q_halt_accuracy")
            )
        )
