"""Validation of a configuration: its sections, the model keywords of each arch, field types, ranges and
choices, and the rules between fields.

Every config file calls `validate` last (`configs.args.build`), and a launcher calls it again after the
command-line overrides.
"""

import ml_collections

SECTIONS = ("data", "model", "act", "curriculum", "optim", "train", "eval", "runtime")

# Model keywords of each arch (`trm_tf.models.model_keys(arch)` plus `arch`; configs do not import
# trm_tf, so tests/config_machinery_test.py checks the two agree). The keys of `model` must be a subset.
_COMMON_MODEL_KEYS = frozenset(
    {
        "arch",
        "hidden_size",
        "num_heads",
        "expansion",
        "L_layers",
        "H_cycles",
        "L_cycles",
        "pos_encodings",
        "puzzle_emb_ndim",
        "puzzle_emb_len",
        "rms_norm_eps",
        "rope_theta",
        "forward_dtype",
        "remat",
        "seed",
    }
)
MODEL_KEYS = {
    "trm": _COMMON_MODEL_KEYS | {"mlp_t", "attention_window"},
    "trm_singlez": _COMMON_MODEL_KEYS | {"mlp_t", "attention_window"},
    "trm_hier6": _COMMON_MODEL_KEYS | {"mlp_t", "attention_window"},
    "hrm": _COMMON_MODEL_KEYS | {"H_layers"},
    "transformer": _COMMON_MODEL_KEYS | {"mlp_t"},
}

# The dense optimizers `optim.name` selects: the keys of `trm_tf.optim.OPTIMIZERS`, the registry (configs do
# not import trm_tf, so tests/config_machinery_test.py checks the two agree).
OPTIMIZER_NAMES = ("adam_atan2", "adamw", "lion")

_CHOICES = {
    "data.host_sharding": ("auto", "groups", "files", "stream"),
    "model.pos_encodings": ("rope", "learned", "none"),
    "model.forward_dtype": ("auto", "float32", "bfloat16", "float16"),
    "act.loss_type": ("stablemax", "softmax"),
    "act.halt_rule": ("q_halt", "q_halt_vs_continue"),
    "optim.name": OPTIMIZER_NAMES,
    "runtime.input_pipelines": ("per_host", "per_replica"),
    "runtime.matmul_precision": ("auto", "highest", "default"),
    "runtime.jit_compile": ("auto", "true", "false"),
}
# (field, type, lowest allowed, highest allowed); None = unbounded. Optional fields may also be None.
_RANGES = (
    ("model.hidden_size", int, 1, None),
    ("model.num_heads", int, 1, None),
    ("model.expansion", float, 0.0, None),
    ("model.L_layers", int, 1, None),
    ("model.H_layers", int, 0, None),
    ("model.H_cycles", int, 1, None),
    ("model.L_cycles", int, 1, None),
    ("model.puzzle_emb_ndim", int, 0, None),
    ("model.puzzle_emb_len", int, 0, None),
    ("model.attention_window", int, 0, None),
    ("act.halt_max_steps", int, 1, None),
    ("act.halt_exploration_prob", float, 0.0, 1.0),
    ("act.halt_exploration_final", float, 0.0, 1.0),
    ("act.halt_penalty", float, 0.0, None),
    ("act.recursion_reg", float, 0.0, None),
    ("curriculum.start_H_cycles", int, 1, None),
    ("curriculum.start_L_cycles", int, 1, None),
    ("curriculum.num_stages", int, 1, None),
    ("curriculum.ramp_fraction", float, 0.0, 1.0),
    ("optim.lr", float, 0.0, None),
    ("optim.lr_min_ratio", float, 0.0, 1.0),
    ("optim.lr_warmup_steps", int, 0, None),
    ("optim.weight_decay", float, 0.0, None),
    ("optim.puzzle_emb_lr", float, 0.0, None),
    ("optim.puzzle_emb_weight_decay", float, 0.0, None),
    ("optim.ema_rate", float, 0.0, 1.0),
    ("train.global_batch_size", int, 1, None),
    ("train.epochs", float, 0.0, None),
    ("train.total_steps", int, 1, None),
    ("train.eval_interval_epochs", float, 0.0, None),
    ("train.eval_every_steps", int, 1, None),
    ("train.steps_per_loop", int, 1, None),
    ("train.log_every_steps", int, 1, None),
    ("train.checkpoint_every_steps", int, 1, None),
    ("train.max_checkpoints", int, 1, None),
    ("train.early_stop_evals", int, 0, None),
    ("eval.global_batch_size", int, 1, None),
    ("eval.halt_max_steps", int, 1, None),
    ("eval.average_last_k", int, 0, None),
    ("runtime.num_logical_cpus", int, 1, None),
    ("runtime.hbm_gib", float, 0.0, None),
    ("runtime.peer_timeout_s", float, 0.0, None),
)
_OPTIONAL = {
    "act.halt_exploration_final",
    "train.total_steps",
    "train.eval_every_steps",
    "eval.halt_max_steps",
}


def _get(c: ml_collections.ConfigDict, dotted: str):
    section, key = dotted.split(".")
    return c[section][key] if key in c[section] else KeyError


def validate(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks what a config file or a command-line override can get wrong, and returns the config.

    Every config file calls it last (`configs.args.build`). It checks the sections (exactly SECTIONS, no
    field outside them), that `model` holds only keywords of its arch (MODEL_KEYS), field types and
    ranges, choices, and the cross-field rules the model and trainer would otherwise only reject after
    the dataset is loaded. Command-line overrides (`--config.x=...`) come after `get_config`; a launcher
    calls `validate` again once they are applied.

    Raises:
      ValueError: one line naming the field and the rule.
    """
    _check_sections(c)
    _check_fields(c)
    _check_cross_field(c)
    return c


def _check_sections(c: ml_collections.ConfigDict) -> None:
    """Exactly SECTIONS, an experiment id and seed, and a model section of its arch's keywords."""
    got = set(c.keys()) - {"experiment_id", "seed"}
    if got != set(SECTIONS):
        raise ValueError(f"config sections are {sorted(got)}, expected {sorted(SECTIONS)}")
    if not isinstance(c.experiment_id, str) or not c.experiment_id:
        raise ValueError("experiment_id must be a non-empty string")
    if not isinstance(c.seed, int) or c.seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {c.seed!r}")
    arch = c.model.get("arch")
    if arch not in MODEL_KEYS:
        raise ValueError(f"model.arch must be one of {sorted(MODEL_KEYS)}, got {arch!r}")
    unknown = sorted(set(c.model.keys()) - MODEL_KEYS[arch])
    if unknown:
        raise ValueError(
            f"model.{unknown[0]} is not a keyword of arch {arch!r} (model keys: "
            f"{sorted(MODEL_KEYS[arch])}; ACT/loss fields live in `act`)"
        )


def _check_fields(c: ml_collections.ConfigDict) -> None:
    """Each field on its own: choices (_CHOICES), types and ranges (_RANGES)."""
    for dotted, choices in _CHOICES.items():
        value = _get(c, dotted)
        if value is not KeyError and value not in choices:
            raise ValueError(f"{dotted} must be one of {list(choices)}, got {value!r}")
    for dotted, typ, low, high in _RANGES:
        value = _get(c, dotted)
        if value is KeyError or (value is None and dotted in _OPTIONAL):
            continue
        ok_type = (int, float) if typ is float else int
        if isinstance(value, bool) or not isinstance(value, ok_type):
            raise ValueError(f"{dotted} must be {typ.__name__}, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(
                f"{dotted}={value!r} is outside [{low}, {high if high is not None else 'inf'}]"
            )


def _check_cross_field(c: ml_collections.ConfigDict) -> None:
    """Rules between fields that the model and trainer would otherwise reject only after loading data."""
    m, arch = c.model, c.model.get("arch")
    if m.get("attention_window", 0) and (m.attention_window % 2 == 0 or m.get("mlp_t", False)):
        raise ValueError(
            "model.attention_window must be 0 or odd, and needs attention (mlp_t=False)"
        )
    if m.puzzle_emb_ndim == 0 and m.puzzle_emb_len != 0:
        raise ValueError("model.puzzle_emb_ndim=0 (no puzzle vector) needs model.puzzle_emb_len=0")
    if m.puzzle_emb_len and m.puzzle_emb_ndim > m.puzzle_emb_len * m.hidden_size:
        raise ValueError(
            f"model.puzzle_emb_ndim={m.puzzle_emb_ndim} does not fit in puzzle_emb_len="
            f"{m.puzzle_emb_len} prefix positions of hidden_size={m.hidden_size}"
        )
    if arch == "trm_hier6" and m.L_cycles > 6:
        raise ValueError(f"arch 'trm_hier6' has six z_L slots: model.L_cycles={m.L_cycles} > 6")
    if c.act.q_continue_target and arch != "hrm":
        raise ValueError(
            "act.q_continue_target (HRM's bootstrapped Q target) is for arch 'hrm' only"
        )
    if c.act.q_continue_target and c.act.get("halt_rule") != "q_halt_vs_continue":
        raise ValueError(
            "act.q_continue_target (a target for q_continue) needs act.halt_rule="
            "'q_halt_vs_continue' (the only rule that reads q_continue)"
        )
    if c.curriculum.enabled and (
        c.curriculum.start_H_cycles > m.H_cycles or c.curriculum.start_L_cycles > m.L_cycles
    ):
        raise ValueError("curriculum start cycles must not exceed model.H_cycles / model.L_cycles")
    if c.eval.subset_size != -1 and c.eval.subset_size < 1:
        raise ValueError(f"eval.subset_size must be -1 (all) or >= 1, got {c.eval.subset_size}")
    if not isinstance(c.eval.get("best_metric", "auto"), str) or not c.eval.get(
        "best_metric", "auto"
    ):
        raise ValueError('eval.best_metric must be a metric name or "auto"')
    names = c.eval.evaluators
    if (
        not isinstance(names, tuple | list)
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"eval.evaluators must be a non-empty tuple of evaluator names, e.g. ('accuracy', 'arc'), "
            f"got {names!r}"
        )
