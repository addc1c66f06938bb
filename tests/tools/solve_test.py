"""The solve tool: puzzle parsing errors, a run directory alone as --checkpoint (config from its
config.json, old layouts upgraded), the restore check on mismatched checkpoints, and the CLI end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from tests.testing.tiny_runs import PUZZLE, make_run, save_checkpoint, tiny_config, weights
from trm_tf import act
from trm_tf.models import build_model
from trm_tf.tools import restore, solve
from trm_tf.workdir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "config_v1")


def test_parse_puzzle_and_errors(tmp_path):
    t = solve.parse_puzzle(PUZZLE)
    assert t.shape == (81,) and t[0] == 6 and t[2] == 1  # '5' -> 6, '.' -> blank 1
    np.testing.assert_array_equal(solve.parse_puzzle(PUZZLE.replace(".", "0")), t)
    with pytest.raises(solve.PuzzleFormatError, match="81 characters"):
        solve.parse_puzzle(PUZZLE[:-1])
    f = tmp_path / "p.txt"
    f.write_text(PUZZLE + "\n\n" + PUZZLE[:40] + "x" * 41 + "\n")
    with pytest.raises(solve.PuzzleFormatError, match=r"p.txt:3: invalid characters 'x'"):
        solve.read_puzzles(str(f))


def _assert_all_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)


def test_run_dir_alone_gives_the_config_and_the_weights(tmp_path):
    cfg = tiny_config(str(tmp_path / "no_data"))
    run = str(tmp_path / "run")
    saved = make_run(run, cfg, steps=(1, 2))
    prefix, raw, ema = saved[2]  # the newest
    want = json.loads(cfg.to_json_best_effort())
    config = restore.resolve_config(run)
    assert config.to_dict() == want
    # A checkpoint prefix inside the run finds the run's config.json, two levels up.
    assert restore.resolve_config(saved[1][0]).to_dict() == want
    assert restore.checkpoint_prefix(run) == prefix
    _assert_all_close(weights(restore.load_model(config, run)), ema)  # EMA weights by default
    _assert_all_close(weights(restore.load_model(config, run, use_ema=False)), raw)
    _assert_all_close(weights(restore.load_model(config, saved[1][0], use_ema=False)), saved[1][1])
    # --config overrides config.json.
    other = tiny_config("elsewhere")
    assert restore.resolve_config(run, other) is other


def test_no_config_anywhere_is_a_one_line_error(tmp_path):
    cfg = tiny_config(str(tmp_path / "no_data"))
    prefix, _, _ = save_checkpoint(str(tmp_path / "bare"), cfg)
    for source, what in [(prefix, "no run directory"), (str(tmp_path / "w.pt"), "state_dict")]:
        with pytest.raises(restore.RestoreError, match=what) as e:
            restore.resolve_config(source)
        assert "--config" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(restore.RestoreError, match="no checkpoint in"):
        restore.checkpoint_prefix(str(tmp_path))
    with pytest.raises(restore.RestoreError, match="ckpt-9.index does not exist"):
        restore.checkpoint_prefix(str(tmp_path / "bare" / "ckpt-9"))


@pytest.mark.parametrize(
    "trained, loaded, ema, match",
    [
        # An MLP-T checkpoint read with the attention config: the attention weights are missing.
        (dict(mlp_t=True), dict(mlp_t=False), True, r"lacks \d+ of the \d+ variables .*self_attn"),
        # Trained without EMA, config (and --ema) asking for the EMA weights.
        ({}, {}, False, r"holds no EMA weights .*--noema"),
        # A wider model than the checkpoint's.
        ({}, dict(hidden_size=64, puzzle_emb_ndim=64), True, r"other shapes .*\[\d+, 32\] vs"),
    ],
)
def test_mismatched_checkpoint_names_what_is_missing(tmp_path, trained, loaded, ema, match):
    data_dir = str(tmp_path / "no_data")
    run = str(tmp_path / "run")
    make_run(run, tiny_config(data_dir, **trained), ema=ema)
    config = tiny_config(data_dir, **loaded)
    with pytest.raises(restore.RestoreError, match=match) as e:
        restore.load_model(config, run)
    assert "\n" not in str(e.value) and len(str(e.value)) < 600


def test_raw_weights_load_from_a_checkpoint_without_ema(tmp_path):
    data_dir = str(tmp_path / "no_data")
    run = str(tmp_path / "run")
    (_, raw, _) = make_run(run, tiny_config(data_dir), ema=False)[1]
    _assert_all_close(weights(restore.load_model(tiny_config(data_dir), run, use_ema=False)), raw)
    # A config without EMA uses the raw weights whatever --ema says.
    config = tiny_config(data_dir)
    config.optim.ema = False
    _assert_all_close(weights(restore.load_model(config, run, use_ema=True)), raw)


@pytest.mark.parametrize("name", ["contrib02_adaptive_halting", "baseline_hrm"])
def test_config_json_of_the_first_layout_loads(tmp_path, name):
    with open(os.path.join(FIXTURES, name, "config.json")) as f:
        old = json.load(f)
    old["model"].update(hidden_size=32, puzzle_emb_ndim=32, H_cycles=1, L_cycles=1)
    old["data"]["data_dir"] = str(tmp_path / "no_data")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(old))
    config = restore.resolve_config(str(run))
    # ACT fields moved from `model` to `act`, train.jit_compile to runtime, -1 sentinels to None.
    assert config.act.halt_max_steps == old["model"]["halt_max_steps"] == 16
    assert config.act.halt_exploration_prob == old["model"]["halt_exploration_prob"]
    assert config.act.q_continue_target == (old["model"]["arch"] == "hrm")
    assert config.runtime.jit_compile == old["train"]["jit_compile"]
    assert config.eval.halt_max_steps is None
    assert "halt_max_steps" not in config.model and "loss_type" not in config.model
    # ...and the model it describes builds and restores.
    (_, raw, ema) = save_checkpoint(str(run / "checkpoints"), config)
    _assert_all_close(weights(restore.load_model(config, str(run))), ema)


def _solve(capsys, *argv):
    """Runs solve.main in this process; returns (exit status, stdout, stderr)."""
    code = 0
    with flagsaver.flagsaver():
        flags.FLAGS(["solve", *argv])
        try:
            solve.main([])
        except SystemExit as e:
            code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_solve_main_from_a_run_dir_alone(tmp_path, capsys):
    data_dir = str(tmp_path / "no_data")
    run = str(tmp_path / "run")
    cfg = tiny_config(data_dir)
    make_run(run, cfg)
    dump = str(tmp_path / "steps.npz")
    code, out, err = _solve(capsys, f"--checkpoint={run}", f"--puzzle={PUZZLE}", f"--dump={dump}")
    assert code == 0, err
    assert out.count("  step ") == 2 and "valid Sudoku" in out  # act.halt_max_steps of config.json
    d = np.load(dump)
    assert d["preds"].shape == (1, 2, 81) and d["q_halt"].shape == (1, 2)
    # config.json no longer matches the checkpoint: one error line, exit status 1, nothing solved.
    RunDir(run).write_config(tiny_config(data_dir, mlp_t=not cfg.model.mlp_t))
    code, out, err = _solve(capsys, f"--checkpoint={run}", f"--puzzle={PUZZLE}")
    assert code == 1 and "step" not in out
    assert err.startswith("error: ") and err.count("\n") == 1 and "lacks" in err


@pytest.mark.slow
def test_solve_cli_on_a_trained_run(tmp_path):
    from tests.testing.launch import small_config
    from tests.testing.tiny_datasets import build_tiny_sudoku
    from trm_tf import train

    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    c = small_config(data_dir, total_steps=4)
    workdir = str(tmp_path / "run")
    RunDir(workdir).write_config(c)  # as launch.py does
    train.run(c, workdir, tf.distribute.get_strategy(), mode="train")

    def solve_cli(*args):
        cmd = [sys.executable, "-m", "trm_tf.tools.solve", f"--checkpoint={workdir}", *args]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)

    dump = str(tmp_path / "steps.npz")
    # The run directory alone: its config.json gives the model and halt_max_steps.
    out = solve_cli(
        f"--puzzle={PUZZLE}",
        f"--dump={dump}",
        f"--render={tmp_path}/steps.png",
        f"--gif={tmp_path}/steps.gif",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        out.stdout.count("step ") == 3 and "q_halt" in out.stdout and "valid Sudoku" in out.stdout
    )
    assert os.path.getsize(tmp_path / "steps.png") > 10_000
    assert os.path.getsize(tmp_path / "steps.gif") > 1_000
    d = np.load(dump)
    assert d["preds"].shape == (1, 3, 81) and d["logits"].shape == (1, 3, 81, 11)
    assert d["q_halt"].shape == (1, 3)
    # --config overrides config.json (same model here, fewer steps through act.halt_max_steps).
    cfg = os.path.join(REPO, "configs", "quickstart.py") + ":runlocal"
    overrides = [
        f"--config.data.data_dir={data_dir}",
        "--config.data.config=pipeline_test",
        "--config.model.hidden_size=32",
        "--config.model.puzzle_emb_ndim=32",
        "--config.model.H_cycles=2",
        "--config.model.L_cycles=2",
        "--config.act.halt_max_steps=2",
    ]
    out = solve_cli(f"--config={cfg}", *overrides, f"--puzzle={PUZZLE}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("step ") == 2
    bad = solve_cli("--puzzle=123")
    assert bad.returncode == 2 and "expected 81 characters" in bad.stderr


def test_print_steps_says_halt_by_the_models_own_test(capsys):
    x = solve.parse_puzzle(PUZZLE, "--puzzle")[None]
    preds = np.repeat(x[:, None], 2, axis=1)
    q_halt = np.array([[-1.0, -1.0]])
    solve.print_steps(x, {"preds": preds, "q_halt": q_halt})
    assert capsys.readouterr().out.count("halt=no") == 2  # TRM's test: q_halt > 0
    # HRM / transformer: q_halt > q_continue passes at the second step although q_halt < 0
    halts = act.halt_flags(q_halt, np.array([[0.0, -2.0]]), "q_halt_vs_continue")
    solve.print_steps(x, {"preds": preds, "q_halt": q_halt, "halt": halts})
    out = capsys.readouterr().out
    assert out.count("halt=no") == 1 and out.count("halt=yes") == 1


def test_the_best_directory_of_a_run_restores_its_checkpoint(tmp_path):
    """`--checkpoint=RUN_DIR/best` (the best checkpoint, `trm_tf.best`; no `checkpoint` state file
    there): its config comes from the run directory, its weights from best/ckpt-N."""
    cfg = tiny_config(str(tmp_path / "no_data"))
    run = str(tmp_path / "run")
    make_run(run, cfg, steps=(1, 3))
    model = build_model(cfg.model, **restore.model_dims(cfg))
    tf.train.Checkpoint(model=model).write(os.path.join(run, "best", "ckpt-2"))
    best = os.path.join(run, "best")
    assert restore.checkpoint_prefix(best) == os.path.join(best, "ckpt-2")
    config = restore.resolve_config(best)
    assert config.to_dict() == json.loads(cfg.to_json_best_effort())
    _assert_all_close(weights(restore.load_model(config, best, use_ema=False)), weights(model))
