"""configs/pilot_cpu.py: every arm differs from the pilot's baseline in exactly the fields its question
varies, the batch arms follow the linear rule at equal examples, and each question's sweep command selects
that question's arms (and the baseline) under three seeds."""

import shlex
import subprocess
import sys

import pytest

import sweep
from configs import catalogue
from tests.testing.config_files import load, load_module
from trm_tf.analysis.run_config import flatten_config

MODULE = load_module("configs/pilot_cpu.py")
BASELINE = flatten_config(load("configs/pilot_cpu.py:baseline").to_dict())

# Each question's arms, restated from the issue (#25) rather than read from the config file.
QUESTIONS = {
    "ema_off": {"ema_off"},
    "attention": {"attention"},
    "tn_": {"tn_2_1", "tn_3_4", "tn_4_2"},
    "batch_": {"batch_128", "batch_256"},
    "nsup_|halt_": {"nsup_2", "nsup_8", "halt_0p01", "halt_0p1", "halt_1"},
    "curriculum": {"curriculum"},
}


def _diff(variant: str) -> dict:
    got = flatten_config(load(f"configs/pilot_cpu.py:{variant}").to_dict())
    assert set(got) == set(BASELINE)
    return {k: v for k, v in got.items() if v != BASELINE[k] and k != "experiment_id"}


@pytest.mark.parametrize("variant", MODULE.VARIANTS)
def test_arm_differs_from_the_baseline_only_in_its_question(variant):
    assert set(_diff(variant)) == set(MODULE.VARIED[variant])


def test_the_arms_are_the_questions():
    assert set(MODULE.VARIANTS) == {"baseline"} | set().union(*QUESTIONS.values())
    assert _diff("ema_off") == {"optim.ema": False}
    assert _diff("attention") == {"model.mlp_t": False, "model.pos_encodings": "rope"}
    tn = {v: (BASELINE["model.H_cycles"], BASELINE["model.L_cycles"]) for v in QUESTIONS["tn_"]}
    for v in tn:
        d = _diff(v)
        tn[v] = (d.get("model.H_cycles", tn[v][0]), d.get("model.L_cycles", tn[v][1]))
    assert tn == {"tn_2_1": (2, 1), "tn_3_4": (3, 4), "tn_4_2": (4, 2)}
    assert _diff("nsup_2") == {"act.halt_max_steps": 2} and _diff("nsup_8") == {
        "act.halt_max_steps": 8
    }
    halt = {
        v: _diff(v)["act.halt_penalty"] for v in QUESTIONS["nsup_|halt_"] if v.startswith("halt_")
    }
    assert halt == pytest.approx({"halt_0p01": 0.01, "halt_0p1": 0.1, "halt_1": 1.0})


@pytest.mark.parametrize("batch", [128, 256])
def test_batch_arms_scale_lr_linearly_at_equal_examples(batch):
    c = flatten_config(load(f"configs/pilot_cpu.py:batch_{batch}").to_dict())
    b0 = BASELINE["train.global_batch_size"]
    assert c["train.global_batch_size"] == batch
    assert c["optim.lr"] / batch == pytest.approx(BASELINE["optim.lr"] / b0)
    assert c["optim.puzzle_emb_lr"] == BASELINE["optim.puzzle_emb_lr"]  # the E1.3 rule leaves it
    for key in ("train.total_steps", "optim.lr_warmup_steps", "train.eval_every_steps"):
        assert c[key] * batch == BASELINE[key] * b0, key
    assert c["eval.global_batch_size"] == BASELINE["eval.global_batch_size"]


def _sweep_lines() -> list[list[str]]:
    lines = [
        s.strip() for s in MODULE.__doc__.splitlines() if s.strip().startswith("python sweep.py")
    ]
    return [shlex.split(s) for s in lines]


def test_each_question_is_one_sweep_command():
    lines = _sweep_lines()
    assert len(lines) == len(QUESTIONS)
    for argv, (_, arms) in zip(lines, QUESTIONS.items()):
        pattern = next(a.split("=", 1)[1] for a in argv if a.startswith("--pattern="))
        assert "--seeds=0,1,2" in argv
        selected = {run.run_id for run in sweep.select([], pattern)}
        assert selected == {f"pilot_cpu_{a}" for a in arms | {"baseline"}}, pattern
    pilot = {r.run_id for r in catalogue.RUNS if r.config == "configs/pilot_cpu.py"}
    assert pilot == {f"pilot_cpu_{v}" for v in MODULE.VARIANTS}


def test_a_question_sweep_dry_run_launches_three_seeds_per_arm(tmp_path):
    argv = _sweep_lines()[0]
    argv = [a.replace("runs/pilot", str(tmp_path / "runs")) for a in argv]
    res = subprocess.run(
        [sys.executable, *argv[1:], "--dry-run"], capture_output=True, text=True, timeout=120,
        cwd=sweep.REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    launches = [x for x in res.stdout.splitlines() if " launch.py " in x]
    assert len(launches) == 6
    for arm in ("baseline", "ema_off"):
        for k in range(3):
            assert any(
                f"--config=configs/pilot_cpu.py:{arm},seed={k}" in x
                and f"pilot_cpu_{arm}-seed{k}" in x
                for x in launches
            ), (arm, k, launches)
