"""Evaluating a reference checkpoint (trm_tf.tools.reference_eval, `launch.py --reference_checkpoint`)
on tiny ARC data with the ARC voting evaluator.

The reference saves its weights with torch.save, which needs torch to read; these tests run without
torch, so the state dict (random weights made here, in the reference's layout and key names with the
`_orig_mod.model.` prefixes of a compiled model, H_init / L_init as bfloat16) is written as
`.safetensors`, which interop reads without torch.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import quickstart
from tests.testing.launch import REPO
from tests.testing.model_inputs import randomise_weights
from tests.testing.tiny_datasets import build_tiny_arc
from trm_tf.models import build_model
from trm_tf.models.interop import reference_variables, write_safetensors
from trm_tf.tools import reference_eval
from trm_tf.trainer import Trainer

OVERRIDES = {
    "data.name": "arc_agi",
    "data.config": "arc1_aug10",
    "data.build_if_missing": False,
    "eval.evaluators": ("accuracy", "arc"),
    "model.mlp_t": False,
    "model.pos_encodings": "rope",
    "model.hidden_size": 32,
    "model.puzzle_emb_ndim": 32,
    "model.H_cycles": 1,
    "model.L_cycles": 1,
    "act.halt_max_steps": 2,
    "train.global_batch_size": 8,
    "eval.global_batch_size": 16,
}


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    return data_dir, build_tiny_arc(data_dir)


def _config(data_dir, seed=0):
    c = quickstart.get_config("runlocal")
    for k, v in OVERRIDES.items():
        section, field = k.split(".")
        c[section][field] = v
    c.data.data_dir = data_dir
    c.seed = seed
    return c


def _reference_file(path, config, spec, seed, **change):
    """Random weights of the config's model saved as the reference saves them (see the docstring)."""
    m = build_model(
        dict(config.model.items(), seed=100 + seed),
        vocab_size=spec.vocab_size,
        seq_len=spec.seq_len,
        num_puzzle_identifiers=spec.num_puzzle_identifiers,
    )
    m.build_variables()
    sd = randomise_weights(m, seed=seed)
    sd.update(change)
    write_safetensors(
        path,
        {"_orig_mod.model." + k: v for k, v in sd.items()},
        bf16_keys=("_orig_mod.model.inner.H_init", "_orig_mod.model.inner.L_init"),
    )
    return sd


def test_load_weights_fills_the_model_and_its_ema(arc, tmp_path):
    data_dir, spec = arc
    c = _config(data_dir)
    path = str(tmp_path / "ref.safetensors")
    sd = _reference_file(path, c, spec, seed=1)
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=10)
    info = reference_eval.load_weights(trainer, path)
    assert sorted(info["loaded"]) == sorted(sd)
    for k, (var, transposed) in reference_variables(trainer.model).items():
        want = sd[k].T if transposed else sd[k]
        np.testing.assert_array_equal(var.numpy(), want, err_msg=k)
    assert (
        trainer.ema is not None
    )  # eval.use_ema would evaluate the shadows: they hold the file too
    for shadow, var in zip(trainer.ema.shadows, trainer.model.trainable_variables):
        np.testing.assert_array_equal(shadow.numpy(), var.numpy())


def test_run_scores_the_checkpoint_with_arc_voting_and_names_errors(arc, tmp_path):
    data_dir, spec = arc
    c = _config(data_dir)
    path = str(tmp_path / "ref.safetensors")
    sd = _reference_file(path, c, spec, seed=1)
    runs = {}
    for name, seed in (("a", 0), ("b", 5)):  # other initial weights: only the file can decide
        workdir = str(tmp_path / name)
        runs[name] = reference_eval.run(
            _config(data_dir, seed), workdir, tf.distribute.get_strategy(), path
        )
        latest = json.load(open(os.path.join(workdir, "eval_results.json")))["latest"]
        assert latest["step"] == 0 and latest["num_examples"] == spec.num_test_examples
        assert latest["ARC/num_tasks"] == 3 and latest["ARC/input_mismatches"] == 0
        assert 0.0 <= latest["ARC/pass@1"] <= latest["ARC/pass@2"] <= 1.0
        assert os.path.exists(os.path.join(workdir, "submission_step0.json"))
        summary = json.load(open(os.path.join(workdir, "run_summary.json")))
        assert summary["reference_checkpoint"] == path and summary["status"] == "finished"
    a, b = ({k: v for k, v in r.items() if k != "eval_seconds"} for r in runs.values())
    assert sorted(a) == sorted(b)
    for k in a:  # the same weights, so the same results up to float32 summation order
        assert a[k] == pytest.approx(b[k], rel=1e-6), k

    with pytest.raises(reference_eval.ReferenceCheckpointError, match="no such file"):
        reference_eval.run(c, str(tmp_path / "c"), tf.distribute.get_strategy(), path + ".x")
    bad = str(tmp_path / "bad.safetensors")
    rows = spec.num_puzzle_identifiers
    _reference_file(
        bad, c, spec, seed=1, **{"inner.puzzle_emb.weights": sd["inner.puzzle_emb.weights"][:-1]}
    )
    with pytest.raises(reference_eval.ReferenceCheckpointError) as e:
        reference_eval.run(c, str(tmp_path / "d"), tf.distribute.get_strategy(), bad)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"inner.puzzle_emb.weights: got ({rows - 1}, 32), expected ({rows}, 32)" in msg


@pytest.mark.slow
def test_launch_evaluates_a_reference_checkpoint(arc, tmp_path):
    data_dir, spec = arc
    path = str(tmp_path / "ref.safetensors")
    _reference_file(path, _config(data_dir), spec, seed=2)
    workdir = str(tmp_path / "run")
    cmd = [
        sys.executable,
        os.path.join(REPO, "launch.py"),
        "--config=" + os.path.join(REPO, "configs", "quickstart.py") + ":runlocal",
        f"--workdir={workdir}",
        "--mode=eval",
        f"--config.data.data_dir={data_dir}",
        *(f"--config.{k}={v}" for k, v in OVERRIDES.items()),
    ]
    env = dict(os.environ, PYTHONPATH=REPO)

    def run(*extra):
        return subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True, timeout=600)

    out = run(f"--reference_checkpoint={path}")
    assert out.returncode == 0, out.stderr[-3000:]
    latest = json.load(open(os.path.join(workdir, "eval_results.json")))["latest"]
    assert latest["num_examples"] == spec.num_test_examples and "ARC/pass@1" in latest
    out = run(f"--reference_checkpoint={path}.missing")
    assert out.returncode == 1 and "no such file" in out.stderr
