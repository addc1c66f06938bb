"""TRM models: the Keras TRM, its layers, the model factory and reference-weight interop."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from trm_tf.models.hrm import HRM
from trm_tf.models.trm import TRM
from trm_tf.models.variants import TransformerBaseline, TRMHier6, TRMSingleZ

# Keys that belong to the ACT wrapper / loss head (trm_tf/act.py, trm_tf/losses.py), not the network.
_WRAPPER_KEYS = frozenset({"arch", "halt_max_steps", "halt_exploration_prob", "loss_type"})
_ARCHS = {
    "trm": TRM,
    "hrm": HRM,
    "trm_singlez": TRMSingleZ,
    "trm_hier6": TRMHier6,
    "transformer": TransformerBaseline,
}
# Keys supplied by the dataset, not the model config.
_DATA_KEYS = ("vocab_size", "seq_len", "num_puzzle_identifiers")


def build_model(model_cfg: Mapping, *, vocab_size: int, seq_len: int, num_puzzle_identifiers: int):
    """Builds a model from a config mapping whose keys are the constructor's keyword names.

    Args:
        model_cfg: mapping (dict, ml_collections.ConfigDict, ...) with an optional `arch` key
            ("trm", the default, or "hrm") and any of the model's constructor keywords (`hidden_size`,
            `H_cycles`, `mlp_t`, `forward_dtype`, ...). The ACT-wrapper keys `halt_max_steps`,
            `halt_exploration_prob`, `loss_type` are ignored here.
        vocab_size: from the dataset metadata.
        seq_len: from the dataset metadata.
        num_puzzle_identifiers: from the dataset metadata.

    Returns:
        The model with every variable built (`build_variables()` already called; call this under
        `strategy.scope()` to get distributed variables).

    Raises:
        ValueError: unknown `arch` or unknown config keys.
    """
    cfg = dict(model_cfg.items())
    arch = cfg.get("arch", "trm")
    if arch not in _ARCHS:
        raise ValueError(f"Unknown model arch {arch!r}; available: {sorted(_ARCHS)}")
    cls = _ARCHS[arch]
    # Subclasses that pass TRM's keywords through declare them with `config_signature`.
    params = inspect.signature(getattr(cls, "config_signature", cls.__init__)).parameters
    allowed = {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY or p.default is not p.empty}
    allowed -= set(_DATA_KEYS)
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
    model = cls(
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_puzzle_identifiers=num_puzzle_identifiers,
        **kwargs,
    )
    model.build_variables()
    return model


__all__ = ["HRM", "TRM", "build_model"]
