"""Every experiment config: loads locked through config_flags (as launch.py does), carries its id, launch
command and dataset build command, divides over TPU replicas, and differs from base EXACTLY as its id says.

The expected differences below are written independently of configs/catalogue.py (they restate the study's
definitions, docs/experiments.md, with the catalogue's documented fixes), so a wrong preset or a
copy-paste slip in a config file fails here. Then `runlocal` of every config; the machinery (`validate`,
ties, overrides, model keywords) is tested in config_machinery_test.py.
"""

import inspect
import itertools
import math
from pathlib import Path

import ml_collections
import pytest

from configs import args, catalogue
from tests.testing.config_files import load, load_module
from trm_tf.analysis.run_config import flatten_config

REPO = Path(__file__).resolve().parents[1]
SQRT = {b: 1e-4 * math.sqrt(b / 768) for b in (1536, 3072, 6144, 12288, 24576, 49152)}
ATT = {"model.mlp_t": False, "model.pos_encodings": "rope"}
ARC = {
    **ATT,
    "data.name": "arc_agi",
    "model.L_cycles": 4,
    "optim.puzzle_emb_lr": 1e-2,
    "optim.weight_decay": 0.1,
    "optim.puzzle_emb_weight_decay": 0.1,
    "train.epochs": 100000,
    "train.eval_interval_epochs": 10000,
    "eval.evaluators": ("accuracy", "arc"),
    "eval.arc_subset_tasks": -1,  # every task in every evaluation, as the reference
}
# The CPU pilot's baseline (configs/pilot_cpu.py): replication_cpu's model on the search-needing Sudoku.
PILOT = {
    "data.config": "generated_extreme_mix",
    "data.build_if_missing": True,
    "model.hidden_size": 64,
    "model.puzzle_emb_ndim": 64,
    "model.num_heads": 2,
    "model.L_cycles": 2,
    "model.forward_dtype": "float32",
    "act.halt_max_steps": 4,
    "optim.lr": 1e-3,
    "optim.puzzle_emb_lr": 1e-3,
    "optim.weight_decay": 0.1,
    "optim.puzzle_emb_weight_decay": 0.1,
    "optim.lr_warmup_steps": 100,
    "optim.ema_rate": 0.99,
    "train.global_batch_size": 64,
    "train.total_steps": 1200,
    "train.eval_every_steps": 200,
    "train.checkpoint_every_steps": 200,
    "train.steps_per_loop": 50,
    "train.log_every_steps": 50,
    "eval.global_batch_size": 256,
    "eval.subset_size": -1,
}

# run_id -> flattened {field: value} that differs from the base recipe, args.build(None) (experiment_id excluded).
EXPECTED = {
    "e1_1_baseline": {},
    "e1_3a_batch1536_linear_lr": {
        "train.global_batch_size": 1536,
        "optim.lr": 2e-4,
        "optim.lr_warmup_steps": 1000,
    },
    "e1_3b_batch3072_linear_lr": {
        "train.global_batch_size": 3072,
        "optim.lr": 4e-4,
        "optim.lr_warmup_steps": 500,
    },
    "e1_3c_batch6144_linear_lr": {
        "train.global_batch_size": 6144,
        "optim.lr": 8e-4,
        "optim.lr_warmup_steps": 250,
    },
    "e2_1_ema_off": {"optim.ema": False},
    "e2_2a_t2_n2": {"model.H_cycles": 2, "model.L_cycles": 2},
    "e2_2b_t2_n6": {"model.H_cycles": 2},
    "e2_2c_t3_n4": {"model.L_cycles": 4},
    "e2_2e_t4_n6": {"model.H_cycles": 4},
    "e2_3_attention": ATT,
    "e2_4a_nsup4": {"act.halt_max_steps": 4},
    "e2_4b_nsup8": {"act.halt_max_steps": 8},
    "e2_4d_nsup32": {"act.halt_max_steps": 32},
    "e3_1b_h768_l3": {"model.hidden_size": 768, "model.puzzle_emb_ndim": 768, "model.L_layers": 3},
    "e3_1c_h1024_l4": {
        "model.hidden_size": 1024,
        "model.puzzle_emb_ndim": 1024,
        "model.L_layers": 4,
        "model.num_heads": 16,
    },
    "e3_2b_data5k": {"data.config": "sub5000_aug1000"},
    "e3_2c_data10k": {"data.config": "sub10000_aug1000"},
    "e3_3a_aug100": {"data.config": "sub1000_aug100"},
    "e3_3b_aug500": {"data.config": "sub1000_aug500"},
    "e3_3d_aug2000": {"data.config": "sub1000_aug2000"},
    "e3_4a_lr_0p5x": {"optim.lr": 5e-5},
    "e3_4c_lr_2x": {"optim.lr": 2e-4},
    "e3_4d_lr_5x": {"optim.lr": 5e-4},
    "e3_4e_lr_10x": {"optim.lr": 1e-3},
    "e4_1_curriculum_t2_to_t4": {
        "model.H_cycles": 4,
        "curriculum.enabled": True,
        "curriculum.start_H_cycles": 2,
        "curriculum.start_L_cycles": 6,
    },
    "e4_2a_halt_penalty_0p01": {"act.halt_penalty": 0.01},
    "e4_2b_halt_penalty_0p1": {"act.halt_penalty": 0.1},
    "e4_2c_halt_penalty_1": {"act.halt_penalty": 1.0},
    "contrib04_l0p01": {"act.recursion_reg": 0.01},
    "contrib04_l0p1": {"act.recursion_reg": 0.1},
    "contrib04_l1": {"act.recursion_reg": 1.0},
    "e4_3a_fp32": {"model.forward_dtype": "float32"},
    "e4_3c_fp16": {"model.forward_dtype": "float16"},
    "e4_4_checkpoint_averaging": {"eval.average_last_k": 5, "train.max_checkpoints": 5},
    "e4adv_2_longer_training": {"train.epochs": 100000},
    "e4adv_3_deeper_model": {"model.L_layers": 4},
    "e4adv_4_no_warmup": {"optim.lr_warmup_steps": 0},
    "paper_maze_hard": {
        **ATT,
        "data.name": "maze_hard",
        "data.config": "hard",
        "model.L_cycles": 4,
    },
    "contrib05_sparse_attention": {
        **ATT,
        "data.name": "maze_hard",
        "data.config": "hard",
        "model.L_cycles": 4,
        "model.attention_window": 7,
    },
    "paper_arc1": {**ARC, "data.config": "arc1_aug1000"},
    "paper_arc2": {**ARC, "data.config": "arc2_aug1000"},
    "exp01a": {"model.hidden_size": 256, "model.num_heads": 4, "model.puzzle_emb_ndim": 256},
    "exp01b": {"model.hidden_size": 384, "model.num_heads": 6, "model.puzzle_emb_ndim": 384},
    "exp01d": {"model.hidden_size": 768, "model.puzzle_emb_ndim": 768},
    "exp01e": {"model.hidden_size": 1024, "model.puzzle_emb_ndim": 1024},
    "exp01f": {"model.hidden_size": 1536, "model.puzzle_emb_ndim": 1536},
    "exp02a_01": {"model.L_cycles": 2},
    "exp02a_04": {"model.L_cycles": 8},
    "exp02a_05": {"model.L_cycles": 10},
    "exp02a_06": {"model.L_cycles": 12},
    "exp02b_01": {"model.H_cycles": 1},
    "exp02b_05": {"model.H_cycles": 5},
    "exp03a": {"model.L_layers": 1, "model.L_cycles": 12},
    "exp03c": {"model.L_layers": 3, "model.L_cycles": 4},
    "exp03d": {"model.L_layers": 4, "model.L_cycles": 3},
    "exp03e": {"model.L_layers": 6, "model.L_cycles": 2},
    "exp04a_100": {"data.config": "sub100_aug1000"},
    "exp04a_250": {"data.config": "sub250_aug1000"},
    "exp04a_500": {"data.config": "sub500_aug1000"},
    "exp04a_2000": {"data.config": "sub2000_aug1000"},
    "exp04b_0010": {"data.config": "sub1000_aug10"},
    "exp05_c": {"act.halt_max_steps": 12},
    "exp05_e": {"act.halt_max_steps": 24},
    **{
        f"exp06_{v}": {
            "train.global_batch_size": b,
            "optim.lr": SQRT[b],
            "optim.puzzle_emb_lr": SQRT[b],
            "optim.lr_warmup_steps": w,
        }
        for v, b, w in [
            ("a", 1536, 1000),
            ("b", 3072, 500),
            ("c", 6144, 250),
            ("d", 12288, 125),
            ("e", 24576, 63),
            ("f", 49152, 32),
        ]
    },
    "exp08b": {"optim.ema_rate": 0.99},
    "exp08c": {"optim.ema_rate": 0.995},
    "exp08e": {"optim.ema_rate": 0.9995},
    "exp09b": {"optim.name": "adamw"},
    "exp09c": {"optim.name": "adamw", "optim.beta2": 0.99},
    "exp09d": {"optim.name": "adamw", "optim.beta2": 0.999},
    "exp09e": {
        "optim.name": "lion",
        "optim.beta2": 0.99,
        "optim.lr": 1e-4 / 3,
        "optim.weight_decay": 3.0,
    },
    "exp10a": {"optim.lr": 3e-5, "optim.puzzle_emb_lr": 3e-5},
    "exp10c": {"optim.lr": 3e-4, "optim.puzzle_emb_lr": 3e-4},
    "exp10d": {"optim.lr_min_ratio": 0.1},
    "exp10e": {"optim.lr_min_ratio": 0.01},
    "contrib01_curriculum": {"curriculum.enabled": True, "curriculum.ramp_fraction": 0.2},
    "contrib02_adaptive_halting": {
        "act.halt_exploration_prob": 0.3,
        "act.halt_exploration_final": 0.05,
    },
    "contrib03_l6": {"model.remat": True},
    "contrib03_l12": {"model.remat": True, "model.L_cycles": 12},
    "contrib03_l24": {"model.remat": True, "model.L_cycles": 24},
    "contrib07_test_time_recursion": {"eval.halt_max_steps": 32},
    # The CPU pilot (configs/pilot_cpu.py): the downscaled baseline, then one question's fields per arm.
    "pilot_cpu_baseline": PILOT,
    "pilot_cpu_ema_off": {**PILOT, "optim.ema": False},
    "pilot_cpu_attention": {**PILOT, **ATT},
    "pilot_cpu_tn_2_1": {**PILOT, "model.H_cycles": 2, "model.L_cycles": 1},
    "pilot_cpu_tn_3_4": {**PILOT, "model.L_cycles": 4},
    "pilot_cpu_tn_4_2": {**PILOT, "model.H_cycles": 4},
    "pilot_cpu_batch_128": {
        **PILOT,
        "train.global_batch_size": 128,
        "optim.lr": 2e-3,
        "optim.lr_warmup_steps": 50,
        "train.total_steps": 600,
        "train.eval_every_steps": 100,
        "train.checkpoint_every_steps": 100,
    },
    "pilot_cpu_batch_256": {
        **PILOT,
        "train.global_batch_size": 256,
        "optim.lr": 4e-3,
        "optim.lr_warmup_steps": 25,
        "train.total_steps": 300,
        "train.eval_every_steps": 50,
        "train.checkpoint_every_steps": 50,
    },
    "pilot_cpu_nsup_2": {**PILOT, "act.halt_max_steps": 2},
    "pilot_cpu_nsup_8": {**PILOT, "act.halt_max_steps": 8},
    "pilot_cpu_halt_0p01": {**PILOT, "act.halt_penalty": 0.01},
    "pilot_cpu_halt_0p1": {**PILOT, "act.halt_penalty": 0.1},
    "pilot_cpu_halt_1": {**PILOT, "act.halt_penalty": 1.0},
    "pilot_cpu_curriculum": {
        **PILOT,
        "curriculum.enabled": True,
        "curriculum.start_H_cycles": 2,
        "curriculum.start_L_cycles": 1,
    },
}

# Every id the study defined (docs/experiments.md#naming-schemes), both schemes.
STUDY_IDS_67 = [
    "baseline",
    *[f"exp01{c}" for c in "abcdef"],
    *[f"exp02a_0{i}" for i in range(1, 7)],
    *[f"exp02b_0{i}" for i in range(1, 6)],
    *[f"exp03{c}" for c in "abcde"],
    *[f"exp04a_{n}" for n in (100, 250, 500, 1000, 2000, 5000)],
    *[f"exp04b_{n:04d}" for n in (10, 100, 500, 1000, 2000)],
    *[f"exp05_{c}" for c in "abcdef"],
    *[f"exp06_{c}" for c in "abcdef"],
    *[f"exp07{c}" for c in "abc"],
    *[f"exp08{c}" for c in "abcde"],
    *[f"exp09{c}" for c in "abcde"],
    *[f"exp10{c}" for c in "abcde"],
    "contrib01_baseline",
    "contrib01_curriculum",
    "contrib02_baseline",
    "contrib02_adaptive",
]
STUDY_IDS_E = [
    "E1.1",
    "E1.2",
    "E1.3a",
    "E1.3b",
    "E1.3c",
    "E2.1a",
    "E2.1b",
    *[f"E2.2{c}" for c in "abcde"],
    "E2.3a",
    "E2.3b",
    *[f"E2.4{c}" for c in "abcd"],
    *[f"E3.1{c}" for c in "abc"],
    *[f"E3.2{c}" for c in "abc"],
    *[f"E3.3{c}" for c in "abcd"],
    *[f"E3.4{c}" for c in "abcde"],
    "E4.1",
    "E4.2a",
    "E4.2b",
    "E4.2c",
    "E4.3a",
    "E4.3b",
    "E4.3c",
    "E4.4",
    "e4_1_lr_search",
    "e4_2_longer_training",
    "e4_3_deeper_model",
    "e4_4_no_warmup",
    "e4_5_larger_batch",
]
# `--tpu=local` on a single-host v4-8, the hosts' addresses where the config needs a larger slice (the slice is
# named on a "# Fits:" line after the command; tests/memory_test.py checks that it fits).
LAUNCH = (
    "python launch.py --config={arg} --workdir=gs://BUCKET/runs/{rid} --tpu={tpu} "
    "--config.data.data_dir=gs://BUCKET/tfds"
)


def diff_from_base(config) -> dict:
    ref, got = flatten_config(args.build(None).to_dict()), flatten_config(config.to_dict())
    assert set(got) == set(ref), "a config must not add or drop fields of base.py"
    return {k: v for k, v in got.items() if v != ref[k] and k != "experiment_id"}


@pytest.fixture(scope="module")
def loaded():
    return {run.run_id: load(run.config_arg) for run in catalogue.RUNS}


def test_expected_table_is_the_registry():
    assert sorted(EXPECTED) == sorted(r.run_id for r in catalogue.RUNS)
    assert len({r.run_id for r in catalogue.RUNS}) == len(catalogue.RUNS)


@pytest.mark.parametrize("run", catalogue.RUNS, ids=lambda r: r.run_id)
def test_config(run, loaded):
    config = loaded[run.run_id]
    assert isinstance(config, ml_collections.ConfigDict) and config.is_locked
    with pytest.raises(AttributeError):
        config.model.hiden_size = 3  # Typos fail on a locked config.
    assert config.experiment_id == run.run_id
    assert f"{config.data.name}/{config.data.config}" == run.dataset
    got, want = diff_from_base(config), EXPECTED[run.run_id]
    tuples = {k for k, v in want.items() if isinstance(v, tuple)}  # approx compares no sequence
    assert {k: got.get(k) for k in tuples} == {k: want[k] for k in tuples}
    assert {k: v for k, v in got.items() if k not in tuples} == pytest.approx(
        {k: v for k, v in want.items() if k not in tuples}
    )
    # Divisible by 8 and by the replica counts of v4-32 (16 chips) and v4-64 (32 chips): TF sees one
    # TPU device per v4 chip (megacore), so per-replica batches are static and equal.
    for replicas in (8, 16, 32):
        assert config.train.global_batch_size % replicas == 0
        assert config.eval.global_batch_size % replicas == 0
    doc = inspect.getdoc(load_module(run.config))
    assert any(
        LAUNCH.format(arg=run.config_arg, rid=run.run_id, tpu=tpu) in doc
        for tpu in ("local", "$(scripts/tpu_address.sh --name=TPU_NAME --zone=ZONE)")
    )
    assert catalogue.build_command(run.dataset) in doc
    assert "Question:" in doc and "Expected" in doc


@pytest.mark.parametrize("run", catalogue.RUNS, ids=lambda r: r.run_id)
def test_runlocal(run):
    arg = ",".join(filter(None, [run.variant, "runlocal", "seed=7"]))
    config = load(f"{run.config}:{arg}")
    assert config.is_locked and config.experiment_id == run.run_id and config.seed == 7
    assert_small(config)
    # Deltas the shrink does not touch survive.
    for key in ("optim.name", "optim.ema", "data.config", "model.mlp_t", "curriculum.enabled"):
        assert (
            flatten_config(config.to_dict())[key]
            == flatten_config(load(run.config_arg).to_dict())[key]
        )
    # ARC: every task in every evaluation stays so (the paper configs); a subset shrinks to 2 tasks.
    full = load(run.config_arg).eval.arc_subset_tasks == -1
    assert config.eval.arc_subset_tasks == (-1 if full else 2)
    assert full == (run.run_id in ("paper_arc1", "paper_arc2"))


def assert_small(config):
    """A one-minute CPU smoke run: the shrink came after the deltas, so widened models shrank too."""
    assert config.train.global_batch_size == 32 and config.train.total_steps == 200
    assert config.eval.global_batch_size <= 64 and config.eval.subset_size <= 256
    m = config.model
    assert m.hidden_size <= 64 and m.puzzle_emb_ndim <= m.hidden_size and m.num_heads <= 2
    assert m.L_layers <= 2 and m.get("H_layers", 0) <= 2 and m.forward_dtype == "float32"
    assert m.H_cycles <= 2 and m.L_cycles <= 2 and config.act.halt_max_steps <= 4
    assert (config.eval.halt_max_steps or 0) <= 8 and config.optim.lr_warmup_steps <= 20


@pytest.mark.parametrize(
    "config_arg",
    [
        "configs/e1_1_baseline.py:runlocal",
        "configs/quickstart.py:runlocal",
        "configs/replication_cpu.py:runlocal",
        "configs/replication_cpu.py:tn_3_4,runlocal",
        "configs/mixer_cpu.py:runlocal",
        "configs/mixer_cpu.py:mlp_t,runlocal",
        "configs/baselines.py:hrm,runlocal",
        "configs/baselines.py:transformer,runlocal",
    ],
)
def test_runlocal_of_the_other_configs(config_arg):
    # quickstart and replication_cpu used to apply runlocal BEFORE their own sizes (800 steps, batch 64).
    assert_small(load(config_arg))


def test_no_two_configs_are_identical(loaded):
    diffs = {rid: diff_from_base(c) for rid, c in loaded.items()}
    for (a, da), (b, db) in itertools.combinations(diffs.items(), 2):
        assert da != db, f"{a} and {b} are the same run"


def test_every_study_id_is_covered():
    ids = {i for i, _ in catalogue.all_ids()}
    for sid in STUDY_IDS_67 + STUDY_IDS_E:
        assert sid in ids or sid in catalogue.NOT_COVERED, sid
    # Only the contributions that need new model/data code are left out; every E-scheme id has a run.
    assert sorted(catalogue.NOT_COVERED) == [
        "contrib05_sparse_attention (50x50 arm)",
        "contrib06_multitask",
    ]
    assert catalogue.lookup("contrib04_regularized_recursion").run_id == "contrib04_l0p1"
    assert catalogue.lookup("E3.2c").dataset == "sudoku_extreme/sub10000_aug1000"
    # The study's duplicates resolve to one run.
    assert (
        catalogue.lookup("exp09a").run_id == catalogue.lookup("baseline").run_id == "e1_1_baseline"
    )
    assert catalogue.lookup("exp08a").run_id == "e2_1_ema_off"
    assert catalogue.lookup("e2.3b").run_id == "e2_3_attention"
    assert len({catalogue.lookup(f"exp06_{c}").run_id for c in "abcdef"}) == 6
    assert len({catalogue.lookup(f"exp09{c}").run_id for c in "abcde"}) == 5


def test_every_config_file_is_registered():
    # Catalogue files follow the study's naming; other configs (quickstart, CPU demos) are free.
    patterns = (
        "e[1-4]_*.py",
        "e4adv_*.py",
        "exp[01]*.py",
        "contrib[0-9]*.py",
        "paper_*.py",
        "pilot_*.py",
    )
    files = {p.name for pattern in patterns for p in (REPO / "configs").glob(pattern)}
    assert files == {Path(r.config).name for r in catalogue.RUNS}
    for path in {r.config for r in catalogue.RUNS if r.variant}:
        variants = load_module(path).VARIANTS
        assert sorted(variants) == sorted(r.variant for r in catalogue.RUNS if r.config == path)


def test_variant_argument_parsing():
    module = load_module("configs/exp01_model_scaling.py")
    assert module.get_config("variant=exp01b").model.hidden_size == 384
    assert module.get_config("seed=2,exp01a").seed == 2
    with pytest.raises(ValueError, match="needs a variant"):
        module.get_config(None)
    with pytest.raises(ValueError, match="needs a variant"):
        module.get_config("exp01c")  # An alias of the baseline, not a variant of this file.
    with pytest.raises(ValueError, match="Unknown config argument"):
        module.get_config("exp01a,hidden=3")
    with pytest.raises(ValueError, match="Unknown config argument"):
        load_module("configs/e2_1_ema_off.py").get_config("exp01a")


def test_readme_table_is_generated_from_the_registry():
    readme = (REPO / "configs" / "README.md").read_text()
    assert catalogue.markdown_table() in readme
    for run in catalogue.RUNS:
        assert f"`{run.config_arg}`" in readme
