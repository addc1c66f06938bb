"""The configuration machinery: the reference architectures of the baselines, the model keywords of each
arch, `build_model` on a config section, the ties between fields, command-line overrides, the derived
schedule, `validate` and the order of the config skeleton (the experiment table is configs_test.py).
"""

import inspect
import re
from pathlib import Path

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import args, validation
from tests.testing.config_files import load, load_module

REPO = Path(__file__).resolve().parents[1]


def test_baseline_configs_build_the_reference_architectures():
    from trm_tf.models import build_model
    from trm_tf.models.recursion import HRMRecursion, OnePassTransformer

    module = load_module("configs/baselines.py")
    with pytest.raises(ValueError, match="needs a variant"):
        module.get_config(None)

    def model_of(variant, **data):
        return build_model(module.get_config(variant).model, **data)  # the section as it is

    hrm_cfg = module.get_config("hrm")
    assert hrm_cfg.experiment_id == "baseline_hrm" and hrm_cfg.data.config == "sub1000_aug1000"
    assert "mlp_t" not in hrm_cfg.model and hrm_cfg.model.pos_encodings == "rope"
    # HRM's halting target is a config decision of its preset; the transformer keeps TRM's.
    assert hrm_cfg.act.q_continue_target
    assert not module.get_config("transformer").act.q_continue_target
    # HRM at ARC shapes: docs/model.md#variants gives 27,276,290 parameters (without the puzzle
    # embedding).
    hrm = model_of("hrm", vocab_size=12, seq_len=900, num_puzzle_identifiers=3)
    assert isinstance(hrm.recursion, HRMRecursion) and hrm.num_params() == 27_276_290
    assert hrm.puzzle_emb_len == 1
    tr = model_of("transformer", vocab_size=11, seq_len=81, num_puzzle_identifiers=2)
    assert isinstance(tr.recursion, OnePassTransformer)
    attn = tr.L_level.blocks[0].self_attn
    assert (len(tr.L_level.blocks), attn.num_heads, attn.head_dim) == (8, 12, 42)
    # runlocal shrinks them like every other config.
    assert module.get_config("hrm,runlocal").model.hidden_size == 64


def test_model_keys_of_configs_are_the_model_keywords():
    # configs/ may not import trm_tf, so validation.MODEL_KEYS restates trm_tf.models.model_keys: same sets.
    from trm_tf.models import BACKBONE_KEYS, model_keys
    from trm_tf.models.backbone import ReasoningBackbone
    from trm_tf.models.recursion import RECURSIONS

    assert sorted(validation.MODEL_KEYS) == sorted(RECURSIONS)
    for arch, keys in validation.MODEL_KEYS.items():
        assert keys == model_keys(arch), arch
    # BACKBONE_KEYS is read off the constructor: the keywords, not the dataset-derived positionals.
    assert {"hidden_size", "forward_dtype", "attention_window"} <= BACKBONE_KEYS
    params = inspect.signature(ReasoningBackbone.__init__).parameters
    assert not BACKBONE_KEYS & {"recursion", "vocab_size", "seq_len", "num_puzzle_identifiers"}
    assert BACKBONE_KEYS < set(params)


def test_optimizer_names_of_configs_are_the_optimizer_registry():
    # configs/ may not import trm_tf, so validation.OPTIMIZER_NAMES restates the keys of the registry
    # trm_tf.optim.OPTIMIZERS (which make_optimizer and the memory estimate read): same names.
    from trm_tf.optim import OPTIMIZERS

    assert sorted(validation.OPTIMIZER_NAMES) == sorted(OPTIMIZERS)
    c = args.build(None)
    for name in OPTIMIZERS:
        c.optim.name = name
        validation.validate(c)
    c.optim.name = "sgd"
    with pytest.raises(
        ValueError, match=re.escape(f"optim.name must be one of {list(validation.OPTIMIZER_NAMES)}")
    ):
        validation.validate(c)


def test_build_model_takes_the_section_and_rejects_other_keys():
    from trm_tf.models import build_model

    config = load("configs/e1_1_baseline.py:runlocal")
    m = build_model(config.model, vocab_size=11, seq_len=81, num_puzzle_identifiers=2)
    assert m.hidden_size == 64 and m.puzzle_emb_ndim == 64 and not m.remat
    for key, value in [("halt_max_steps", 16), ("hiden_size", 3), ("H_layers", 2)]:
        with pytest.raises(ValueError, match=key) as e:
            build_model(
                {**config.model.to_dict(), key: value},
                vocab_size=11,
                seq_len=81,
                num_puzzle_identifiers=2,
            )
        assert "\n" not in str(e.value)


def test_ties_follow_until_set_and_never_write_back():
    c = args.build(None)
    assert c.model.puzzle_emb_ndim == c.model.hidden_size == 512
    assert c.eval.global_batch_size == c.train.global_batch_size == 768
    c.model.hidden_size, c.train.global_batch_size = 256, 1536
    assert c.model.puzzle_emb_ndim == 256 and c.eval.global_batch_size == 1536
    c.model.puzzle_emb_ndim = 0  # breaks the tie of this config only...
    c.eval.global_batch_size = 64
    assert c.model.hidden_size == 256 and c.train.global_batch_size == 1536  # ...not written back
    c.model.hidden_size = 128
    assert c.model.puzzle_emb_ndim == 0
    assert args.build(None).model.puzzle_emb_ndim == 512  # other configs keep theirs
    # The batch rules keep evaluation at the paper's batch (the values these runs always had).
    e13 = load("configs/e1_3c_batch6144_linear_lr.py")
    assert (e13.train.global_batch_size, e13.eval.global_batch_size) == (6144, 768)


def test_command_line_overrides_of_ties_and_derived_fields():
    # As launch.py: config_flags overrides on a locked config, after get_config.
    argv = [
        "launch.py",
        f"--config={REPO / 'configs/e1_1_baseline.py'}",
        "--config.model.hidden_size=256",
        "--config.train.total_steps=16",
        "--config.eval.halt_max_steps=32",
        "--config.act.halt_exploration_final=0.05",
    ]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "", flag_values=fv, lock_config=True, sys_argv=argv
    )
    fv(argv)
    c = fv.config
    assert c.model.puzzle_emb_ndim == 256 and c.train.total_steps == 16
    assert c.eval.halt_max_steps == 32 and c.act.halt_exploration_final == 0.05
    assert validation.validate(c) is c
    # Derived fields are None until set, never -1.
    b = args.build(None)
    assert [b.train.total_steps, b.train.eval_every_steps, b.eval.halt_max_steps] == [None] * 3
    assert b.act.halt_exploration_final is None


def test_resolve_schedule_derives_none_once():
    from trm_tf.trainer import resolve_schedule

    class Spec:
        def steps_per_epoch(self, batch):
            return 1000 * 10 / batch  # 1000 groups x 10 examples

    c = args.build(None)
    c.train.global_batch_size = 100
    c.train.epochs, c.train.eval_interval_epochs = 20, 5
    assert resolve_schedule(c, Spec()) == (2000, 500)
    c.train.total_steps, c.train.eval_every_steps = 7, 3
    assert resolve_schedule(c, Spec()) == (7, 3)


def test_derived_evaluations_fall_on_the_reference_grid():
    """The paper's Sudoku recipe: 50,000 epochs of 1,000 one-example groups at batch 768, evaluated every
    5,000 epochs. The reference runs 10 iterations and evaluates after each, the last at the end; the
    derived cadence gives 9 periodic evaluations and the final one, none a few steps before the end."""
    from trm_tf.actions import crossed
    from trm_tf.trainer import resolve_schedule

    class Spec:
        def steps_per_epoch(self, batch):
            return 1000 / batch

    c = args.build(None)
    c.train.global_batch_size = 768
    c.train.epochs, c.train.eval_interval_epochs = 50000, 5000
    total, every = resolve_schedule(c, Spec())
    assert (total, every) == (
        65104,
        6511,
    )  # int(5000 * 1000 / 768) = 6510 would evaluate at 65,100 too
    periodic = [s for s in range(1, total) if crossed(s - 1, s, every)]
    assert len(periodic) == 9 and periodic[-1] == 58599 and total - periodic[-1] == 6505
    # An interval that does not divide the epochs keeps the plain conversion.
    c.train.eval_interval_epochs = 3000
    assert resolve_schedule(c, Spec()) == (65104, 3906)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model.hidden_size", 0, "model.hidden_size=0 is outside"),
        ("model.forward_dtype", "fp8", "model.forward_dtype must be one of"),
        ("model.attention_window", 7, "needs attention"),
        ("model.puzzle_emb_ndim", 9000, "does not fit"),
        ("act.halt_exploration_prob", 1.5, "act.halt_exploration_prob=1.5 is outside"),
        ("eval.subset_size", 0, "eval.subset_size must be -1"),
        ("act.q_continue_target", True, "for arch 'hrm' only"),
        ("train.total_steps", 0, "train.total_steps=0 is outside"),
        ("runtime.jit_compile", "yes", "runtime.jit_compile must be one of"),
        ("eval.evaluators", ("accuracy", 3), "eval.evaluators must be a non-empty tuple"),
        ("eval.evaluators", (), "eval.evaluators must be a non-empty tuple"),
        ("curriculum.enabled", True, "curriculum start cycles"),
    ],
)
def test_validate_rejects(field, value, message):
    c = args.build(None)
    c.curriculum.start_L_cycles = 8  # only matters once the curriculum is on
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(ValueError, match=message):
        validation.validate(c)


def test_validate_rejects_keys_outside_the_model_keywords_and_sections():
    c = args.build(None)
    c.model.halt_max_steps = 16  # the old place of an ACT field
    with pytest.raises(ValueError, match="model.halt_max_steps is not a keyword of arch 'trm'"):
        validation.validate(c)
    c = load_module("configs/baselines.py").get_config("hrm")
    c.model.mlp_t = False  # HRM has no MLP-T switch, not even off
    with pytest.raises(ValueError, match="model.mlp_t is not a keyword of arch 'hrm'"):
        validation.validate(c)
    c = args.build(None)
    c.extra = ml_collections.ConfigDict()
    with pytest.raises(ValueError, match="config sections"):
        validation.validate(c)


def test_skeleton_applies_runlocal_after_the_deltas():
    def widen(config, arg):
        config.model.hidden_size = 1024
        config.train.total_steps = 100_000

    config = args.build("runlocal,seed=3", widen)
    assert (config.model.hidden_size, config.train.total_steps, config.seed) == (64, 200, 3)
    assert args.build(None, widen).model.puzzle_emb_ndim == 1024  # the tie followed the delta
    with pytest.raises(ValueError, match="outside"):
        args.build(None, lambda c, a: setattr(c.optim, "ema_rate", 2.0))  # validated last
