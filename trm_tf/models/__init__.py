"""TRM models: the model factory `build_model` and the config keys of each arch.

The package's modules: `backbone` (`ReasoningBackbone`), `recursion` (the recursion schemes and
`RECURSIONS`), `layers` and `primitives` (the Keras layers), `flops` (matmul FLOP count) and `interop`
(reference-weight import and export). Import each name from its module.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from trm_tf.models import backbone, recursion

# Keywords of `ReasoningBackbone` that a config sets: those with a default (everything but the
# recursion object and the three dataset-derived positional arguments), read off the signature so the
# set cannot drift from the constructor. configs/base.py restates them (configs do not import trm_tf);
# tests/config_machinery_test.py checks the two agree.
BACKBONE_KEYS = frozenset(
    name
    for name, p in inspect.signature(backbone.ReasoningBackbone.__init__).parameters.items()
    if p.default is not p.empty
)


def model_keys(arch: str) -> frozenset:
    """Config keys `build_model` accepts for `arch`: `arch`, the backbone keywords the arch has (its
    recursion's `unsupported` switches removed) and the recursion's (`H_cycles`, `L_cycles`)."""
    r = recursion.RECURSIONS[arch]
    return (BACKBONE_KEYS - set(r.unsupported)) | set(r.config_keys) | {"arch"}


def build_model(model_cfg: Mapping, *, vocab_size: int, seq_len: int, num_puzzle_identifiers: int):
    """Builds a model from a config mapping whose keys are exactly the model's keyword names.

    Args:
        model_cfg: mapping (dict, ml_collections.ConfigDict such as `config.model`, ...) with an
            optional `arch` key ("trm", the default, "hrm", "trm_singlez", "trm_hier6" or
            "transformer") and any of that arch's keywords (`model_keys(arch)`: `hidden_size`,
            `mlp_t`, `forward_dtype`, `H_cycles`, ...). Nothing else: ACT and loss settings are not
            the model's (they are `config.act`).
        vocab_size: from the dataset metadata.
        seq_len: from the dataset metadata.
        num_puzzle_identifiers: from the dataset metadata.

    Returns:
        A `ReasoningBackbone` with every variable built (`build_variables()` already called; call
        this under `strategy.scope()` to get distributed variables).

    Raises:
        ValueError: unknown `arch`, or a key that is not a keyword of the arch (one line naming it).
    """
    kwargs = dict(model_cfg.items())
    arch = kwargs.pop("arch", "trm")
    if arch not in recursion.RECURSIONS:
        raise ValueError(f"Unknown model arch {arch!r}; available: {sorted(recursion.RECURSIONS)}")
    unknown = sorted(set(kwargs) - model_keys(arch))
    if unknown:
        raise ValueError(
            f"model config key(s) {unknown} are not keywords of arch {arch!r}; "
            f"accepted: {sorted(model_keys(arch))}"
        )
    model = backbone.ReasoningBackbone.create(
        arch, vocab_size, seq_len, num_puzzle_identifiers, **kwargs
    )
    model.build_variables()
    return model


__all__ = ["BACKBONE_KEYS", "build_model", "model_keys"]
