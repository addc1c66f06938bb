"""A run's config.json of any age: flattened to dotted keys, and read in today's layout.

Every reader of a stored config goes through `upgrade_config`: the run directory (`RunDir.read_config`, and
`RunDir.check_config` before a resume), hence the tools, and the run tables of `trm_tf.analysis`. It is
pandas- and TensorFlow-free, so `trm_tf.workdir` imports it without loading the analysis stack.
"""

from __future__ import annotations

import math
import re


def flatten_config(tree: dict, prefix: str = "") -> dict:
    """Nested dicts as one dict of dotted keys (`{"model": {"arch": "trm"}}` -> `{"model.arch": "trm"}`);
    other values as they are."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unflatten_config(flat: dict) -> dict:
    """The nested dict of dotted keys (the inverse of `flatten_config`)."""
    out: dict = {}
    for key, v in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


# Flattened config keys of config.json files written before the `act` section existed, and where each
# field lives now (same meaning, same value).
OLD_TO_NEW_KEYS = {
    "model.halt_max_steps": "act.halt_max_steps",
    "model.halt_exploration_prob": "act.halt_exploration_prob",
    "model.halt_exploration_final": "act.halt_exploration_final",
    "model.loss_type": "act.loss_type",
    "model.halt_penalty": "act.halt_penalty",
    "model.recursion_reg": "act.recursion_reg",
    "train.jit_compile": "runtime.jit_compile",
}
# Fields added after some runs were written, with the default today's config gives them. A file without
# one gets the default, so old and new runs share the column (and a restored config has the field).
# eval.arc_subset_tasks: runs before it scored periodic ARC evals on eval.subset_size rows instead; the
# value says how a rerun of the config evaluates.
# eval.best_metric, train.early_stop_evals: the best checkpoint and early stopping (off) came later.
ADDED_DEFAULTS = {
    "eval.arc_subset_tasks": 40,
    "eval.best_metric": "auto",
    "train.early_stop_evals": 0,
}
# Fields that old files wrote but nothing read.
REMOVED_KEYS = ("eval.report_adaptive_halting",)
# Old "-1 = derive" sentinels, now None (null in config.json).
OLD_SENTINELS = (
    "train.total_steps",
    "train.eval_every_steps",
    "eval.halt_max_steps",
    "act.halt_exploration_final",
)
# Model switches an arch does not have: old files listed them (as off) for every arch, new ones do not.
_NOT_KEYWORDS = {
    "hrm": ("model.mlp_t", "model.attention_window"),
    "transformer": ("model.attention_window",),
}


def upgrade_config(flat: dict) -> dict:
    """A flattened config of any age in today's layout, so old and new runs tabulate in one table.

    Files written before the `act` section (they have `model.halt_max_steps`) get their ACT/loss fields
    and `train.jit_compile` moved (OLD_TO_NEW_KEYS), `act.q_continue_target` added with the value the
    trainer then derived from the arch (True for "hrm") and `act.halt_rule` with the rule it used, the
    arch's non-keywords and removed fields dropped, and -1 sentinels turned into None. A whole config
    of any age that lacks a field added since gets its default (ADDED_DEFAULTS), appended. The one
    evaluator name `eval.evaluator` becomes the list `eval.evaluators` (a list, as config.json holds it).
    A current file comes back unchanged.
    """
    if (
        "eval.evaluator" in flat
    ):  # one name: "" (accuracy, which always ran) or "arc" (and ARC voting)
        flat = dict(flat)
        old = flat.pop("eval.evaluator")
        flat["eval.evaluators"] = ["accuracy", old] if old else ["accuracy"]
    if "model.halt_max_steps" not in flat:
        out = dict(flat)
        if "eval.subset_size" in out:  # a whole config, not a fragment
            out.update({k: v for k, v in ADDED_DEFAULTS.items() if k not in out})
        if (
            "act.q_continue_target" in out and "act.halt_rule" not in out
        ):  # before the explicit rule
            out["act.halt_rule"] = (
                "q_halt_vs_continue" if out["act.q_continue_target"] else "q_halt"
            )
        return out
    out = {OLD_TO_NEW_KEYS.get(k, k): v for k, v in flat.items() if k not in REMOVED_KEYS}
    out.update({k: v for k, v in ADDED_DEFAULTS.items() if k not in out})
    arch = out.get("model.arch", "trm")
    out["act.q_continue_target"] = arch == "hrm"
    # The halting rule those runs trained with: HRM's q_halt > q_continue, TRM's q_halt > 0 otherwise
    # (the transformer baseline then used TRM's rule).
    out["act.halt_rule"] = "q_halt_vs_continue" if arch == "hrm" else "q_halt"
    for k in _NOT_KEYWORDS.get(arch, ()):
        out.pop(k, None)
    for k in OLD_SENTINELS:
        if isinstance(out.get(k), (int, float)) and out[k] < 0:
            out[k] = None
    return out


def upgrade_config_dict(data: dict) -> dict:
    """A config.json's content (nested) in today's layout; a current one comes back equal."""
    return unflatten_config(upgrade_config(flatten_config(data)))


def parse_data_config(name) -> tuple[float, float]:
    """Training puzzles and augmentations per puzzle from a data config name like `sub1000_aug1000`.

    Returns NaN for a part the name does not state.
    """
    if not isinstance(name, str):
        return math.nan, math.nan
    sub = re.search(r"sub(?:sample)?[_-]?(\d+)", name)
    aug = re.search(r"aug[_-]?(\d+)", name)
    return (float(sub.group(1)) if sub else math.nan, float(aug.group(1)) if aug else math.nan)
