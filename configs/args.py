"""The config argument string and the one skeleton every config file follows.

`--config=configs/x.py:ARG`: ARG is a comma-separated list of `key=value` or bare `key` (meaning True),
typed by the defaults (big_vision's contract). Every file accepts `runlocal` (shrink to a CPU smoke run of
about a minute) and `seed=N`; a family file (one file, several runs) also takes its variant, as a bare
key (`:exp01a`) or `variant=exp01a`. Unknown keys are an error.

Every `get_config` is `build(arg, deltas, variants)`:

    argument -> base.fields(seed) -> the file's deltas -> runlocal (base.shrink_for_cpu) -> validate

so `runlocal` shrinks what the deltas widened, and no config leaves a file unvalidated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import ml_collections

from configs import base
from configs.validation import validate

# Keys every config file accepts, with their defaults (their types type the parsing).
ARG_DEFAULTS = {"runlocal": False, "seed": 0, "variant": ""}


def parse_arg(arg: str | None, variants=(), **defaults) -> ml_collections.ConfigDict:
    """Parses `key=value,flag` into a ConfigDict typed by ARG_DEFAULTS and `defaults`.

    Args:
      arg: the text after ':' in `--config=configs/x.py:ARG` (None or "" for none).
      variants: the variant names a family file accepts; a bare key among them sets `variant`.
      **defaults: extra keys the file accepts (or a default `variant`), with their defaults.

    Returns:
      The parsed values (`runlocal`, `seed`, `variant` and the extra keys).

    Raises:
      ValueError: unknown key, a value of the wrong type, or (for a family file) a missing or unknown
        variant.
    """
    out = ml_collections.ConfigDict(dict(ARG_DEFAULTS, **defaults))
    rest = []
    for item in filter(None, (arg or "").split(",")):
        key, sep, value = (p.strip() for p in item.partition("="))
        if variants and ((not sep and key in variants) or key == "variant"):
            out.variant = value if sep else key
        else:
            rest.append((key, sep, value))
    # The variant first: `:exp01c` in a family file is an alias of another file, not an unknown key.
    if variants and out.variant not in variants:
        raise ValueError(
            f"This family file needs a variant, one of {sorted(variants)} (got {out.variant!r}); other "
            "ids of the family are aliases of other files, see configs/README.md"
        )
    for key, sep, value in rest:
        if key not in out or key == "variant":
            known = sorted(k for k in out.keys() if k != "variant")
            raise ValueError(f"Unknown config argument {key!r}; known: {known}")
        default = out[key]
        if not sep:
            out[key] = True
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"Config argument {key}={value!r} is not a boolean")
            out[key] = value.lower() in ("true", "1")
        else:
            out[key] = type(default)(value)
    return out


def apply(config: ml_collections.ConfigDict, overrides: Mapping) -> ml_collections.ConfigDict:
    """Sets flattened overrides {"model.hidden_size": 256, ...}; unknown fields are an error."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise KeyError(f"{dotted} is not a field of configs/base.py")
        node[leaf] = value
    return config


Deltas = Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict], None]


def build(
    arg: str | None, deltas: Deltas | None = None, variants=(), **defaults
) -> ml_collections.ConfigDict:
    """The skeleton: argument -> base fields -> `deltas(config, parsed_arg)` -> runlocal -> validate.

    Args:
      arg: the config argument string (see the module docstring).
      deltas: what the file changes from base; called with the config and the parsed argument (its
        `variant`, and any extra keys of `defaults`). None = the base recipe itself.
      variants: the variant names of a family file (empty for single-run files).
      **defaults: extra argument keys of the file, with their defaults.

    Returns:
      The validated config.
    """
    parsed = parse_arg(arg, variants, **defaults)
    config = base.fields(parsed.seed)
    if deltas is not None:
        deltas(config, parsed)
    if parsed.runlocal:
        base.shrink_for_cpu(config)
    return validate(config)


def family(arg: str | None, variants: Mapping[str, Mapping]) -> ml_collections.ConfigDict:
    """get_config of a family file whose variants are flattened overrides: id = the variant's name."""

    def deltas(config, parsed):
        config.experiment_id = parsed.variant
        apply(config, variants[parsed.variant])

    return build(arg, deltas, tuple(variants))
