"""TRM models: the reasoning backbone, its recursion schemes, the model factory and reference-weight
interop."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from trm_tf.models.backbone import ReasoningBackbone
from trm_tf.models.recursion import (
    RECURSIONS,
    Hier6Recursion,
    HRMRecursion,
    OnePassTransformer,
    SingleZRecursion,
    TRMRecursion,
)

# Keys that belong to the ACT wrapper / loss head (trm_tf/act.py, trm_tf/losses.py), not the network.
_WRAPPER_KEYS = frozenset({"arch", "halt_max_steps", "halt_exploration_prob", "loss_type"})
# Keys supplied by the dataset, not the model config.
_DATA_KEYS = ("vocab_size", "seq_len", "num_puzzle_identifiers")
# Backbone keywords every arch has (the recursion's `unsupported` ones are removed per arch).
_BACKBONE_KEYS = frozenset(
    n
    for n, p in inspect.signature(ReasoningBackbone.__init__).parameters.items()
    if p.default is not p.empty
)


def model_keys(arch: str) -> frozenset:
    """Config keys `build_model` accepts for `arch` (besides the ACT-wrapper keys)."""
    r = RECURSIONS[arch]
    return (_BACKBONE_KEYS - set(r.unsupported)) | set(r.config_keys)


def build_model(model_cfg: Mapping, *, vocab_size: int, seq_len: int, num_puzzle_identifiers: int):
    """Builds a model from a config mapping whose keys are the model's keyword names.

    Args:
        model_cfg: mapping (dict, ml_collections.ConfigDict, ...) with an optional `arch` key
            ("trm", the default, "hrm", "trm_singlez", "trm_hier6" or "transformer") and any of the
            backbone's keywords (`hidden_size`, `mlp_t`, `forward_dtype`, ...) and the recursion's
            (`H_cycles`, `L_cycles`). The ACT-wrapper keys `halt_max_steps`,
            `halt_exploration_prob`, `loss_type` are ignored here.
        vocab_size: from the dataset metadata.
        seq_len: from the dataset metadata.
        num_puzzle_identifiers: from the dataset metadata.

    Returns:
        A `ReasoningBackbone` with every variable built (`build_variables()` already called; call
        this under `strategy.scope()` to get distributed variables).

    Raises:
        ValueError: unknown `arch` or unknown config keys.
    """
    cfg = dict(model_cfg.items())
    arch = cfg.get("arch", "trm")
    if arch not in RECURSIONS:
        raise ValueError(f"Unknown model arch {arch!r}; available: {sorted(RECURSIONS)}")
    allowed = model_keys(arch)
    kwargs = {k: v for k, v in cfg.items() if k not in _WRAPPER_KEYS}
    # configs/base.py lists TRM's switches for every arch; an arch without them takes them only off.
    for k in ("mlp_t", "remat", "attention_window"):
        if k in kwargs and k not in allowed:
            if kwargs[k]:
                raise ValueError(f"arch {arch!r} does not support {k}={kwargs[k]!r}")
            kwargs.pop(k)
    for k in _DATA_KEYS:
        if k in kwargs:
            raise ValueError(f"model config must not set {k!r}: it comes from the dataset metadata")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in the model config for arch {arch!r}; "
            f"allowed: {sorted(allowed | _WRAPPER_KEYS)}"
        )
    model = ReasoningBackbone.create(arch, vocab_size, seq_len, num_puzzle_identifiers, **kwargs)
    model.build_variables()
    return model


__all__ = [
    "HRMRecursion",
    "Hier6Recursion",
    "OnePassTransformer",
    "RECURSIONS",
    "ReasoningBackbone",
    "SingleZRecursion",
    "TRMRecursion",
    "build_model",
    "model_keys",
]
