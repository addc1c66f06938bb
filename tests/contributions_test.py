"""The study's contributions behave as claimed: curriculum, annealed exploration, test-time recursion,
adaptive halting at evaluation, checkpoint averaging, exploration draws, precision variants."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import small_config
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import act, checkpointing
from trm_tf.data import eval_input, input_pipeline
from trm_tf.trainer import Trainer, curriculum_stages


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return build_tiny_sudoku(str(tmp_path_factory.mktemp("tfds")))


def test_curriculum_schedule_gives_the_right_depths_at_the_right_steps(spec):
    c = small_config(spec.data_dir)
    c.model.H_cycles, c.model.L_cycles = 3, 6
    assert curriculum_stages(c, 100) == [(0, (3, 6))]  # off: the reference depth throughout
    c.curriculum.enabled = True
    c.curriculum.start_H_cycles, c.curriculum.start_L_cycles = 1, 2
    c.curriculum.num_stages, c.curriculum.ramp_fraction = 3, 0.5
    assert curriculum_stages(c, 100) == [(0, (1, 2)), (25, (2, 4)), (50, (3, 6))]


@pytest.mark.slow  # trains through every curriculum stage
def test_curriculum_training_switches_depth_between_loops(spec):
    c = small_config(spec.data_dir)
    c.model.H_cycles, c.model.L_cycles = 2, 2
    c.curriculum.enabled = True
    c.curriculum.start_H_cycles, c.curriculum.start_L_cycles = 1, 1
    c.curriculum.num_stages, c.curriculum.ramp_fraction = 2, 0.5
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=8)
    assert trainer.stages == [(0, (1, 1)), (4, (2, 2))]
    assert trainer.steps_to_stage_change(0) == 4 and trainer.stage_at(4) == 1
    it = iter(input_pipeline.distribute_train(tf.distribute.get_strategy(), spec, 16, 0))
    with pytest.raises(ValueError, match="crosses a curriculum stage"):
        trainer.train_loop(it, 5)
    trainer.train_loop(it, 4)
    trainer.train_loop(it, 4)
    assert sorted(trainer._train_loops) == [0, 1]
    assert (trainer.model.H_cycles, trainer.model.L_cycles) == (2, 2)  # the model is not mutated
    # The stage cores really differ in depth: a shallow model's forward gives other logits.
    carry = trainer.carry.read()
    batch = {k: carry[k] for k in ("inputs", "labels", "puzzle_identifiers")}
    outs = []
    rows = trainer.model.gather_puzzle_rows(batch["puzzle_identifiers"])
    for cycles in [(1, 1), (2, 2), None]:
        fresh = trainer.model.initial_carry(16)
        outs.append(trainer.model.inner(fresh, batch["inputs"], rows, cycles=cycles)["logits"])
    assert not np.allclose(outs[0].numpy(), outs[1].numpy())
    np.testing.assert_array_equal(outs[1].numpy(), outs[2].numpy())  # None = the model's depth
    assert np.isfinite(trainer.read_metrics(8)["loss"])


def test_exploration_schedule_and_draws():
    assert float(act.exploration_prob_at(0, 100, 0.1, 0.1)) == pytest.approx(0.1)
    assert float(act.exploration_prob_at(50, 100, 0.5, 0.0)) == pytest.approx(0.25)
    assert float(act.exploration_prob_at(200, 100, 0.5, 0.0)) == pytest.approx(0.0)
    d = act.exploration_draws(0, 7, 20000, 0.1, 16).numpy()
    assert 0.08 < (d > 0).mean() < 0.12  # explore w.p. 0.1
    assert set(np.unique(d[d > 0])) == set(range(2, 17))  # min steps uniform in [2, N_sup]
    np.testing.assert_array_equal(d, act.exploration_draws(0, 7, 20000, 0.1, 16).numpy())
    assert not np.array_equal(d, act.exploration_draws(0, 8, 20000, 0.1, 16).numpy())


def test_halting_rule():
    steps = tf.constant([1, 2, 3, 16, 5])
    q = tf.constant([1.0, -1.0, 2.0, -3.0, 0.5])
    min_halt = tf.constant([0, 0, 4, 0, 0])
    got = act.halting(
        steps, q, min_halt, halt_max_steps=16, training=True, halt_rule="q_halt"
    ).numpy()
    np.testing.assert_array_equal(got, [True, False, False, True, True])
    got = act.halting(
        steps, q, min_halt, halt_max_steps=16, training=False, halt_rule="q_halt"
    ).numpy()
    np.testing.assert_array_equal(got, [False, False, False, True, False])


@pytest.mark.slow  # traces an evaluation per test-time depth
def test_test_time_recursion_and_adaptive_halting_metrics(spec):
    c = small_config(spec.data_dir)
    c.act.halt_max_steps = 2
    c.eval.halt_max_steps = 5  # evaluate with more supervision steps than trained
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=4)
    dist, steps = eval_input.distribute_eval(tf.distribute.get_strategy(), spec, 16)
    m = trainer.evaluate(dist, steps)
    assert "exact_accuracy/step_5" in m and "exact_accuracy/step_6" not in m
    assert m["num_examples"] == 37
    assert m["steps"] == pytest.approx(5.0)
    # A fresh model has q_halt = -5 everywhere: nobody halts early, adaptive = final step.
    assert m["adaptive_steps"] == pytest.approx(5.0)
    assert m["adaptive_exact_accuracy"] == pytest.approx(m["exact_accuracy/step_5"])
    assert m["q_halt_loss"] == pytest.approx(
        np.log1p(np.exp(-5.0)), rel=1e-4
    )  # targets 0, padded rows out


def test_checkpoint_average_is_the_mean_of_the_weights(spec, tmp_path):
    c = small_config(spec.data_dir)
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=10)
    ck = tf.train.Checkpoint(model=trainer.model)
    saved, paths = [], []
    for i in range(3):
        for v in trainer.model.trainable_variables:
            v.assign(tf.random.normal(v.shape, seed=i))
        saved.append([v.numpy() for v in trainer.model.trainable_variables])
        paths.append(ck.write(str(tmp_path / f"c{i}")))
    live = [v.numpy() for v in trainer.model.trainable_variables]
    avg = checkpointing.average_checkpoint_weights(trainer.model, paths)
    for j, a in enumerate(avg):
        np.testing.assert_allclose(a, np.mean([s[j] for s in saved], axis=0), rtol=1e-6, atol=1e-7)
    for v, w in zip(trainer.model.trainable_variables, live):  # live weights restored
        np.testing.assert_array_equal(v.numpy(), w)


@pytest.mark.slow  # 30 training steps per dtype; bfloat16 on CPU takes minutes
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_training_runs_and_learns(spec, dtype):
    c = small_config(spec.data_dir)
    c.model.forward_dtype = dtype
    c.optim.lr = 3e-3
    if dtype == "float16":  # XLA:CPU emulates float16 at ~5 s a step (TF's kernels: ~0.1 s)
        c.runtime.jit_compile = "false"
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=30)
    it = iter(input_pipeline.distribute_train(tf.distribute.get_strategy(), spec, 16, 0))
    trainer.train_loop(it, 5)
    first = trainer.read_metrics(5)
    trainer.reset_metrics()
    trainer.train_loop(it, 25)
    last = trainer.read_metrics(25)
    assert np.isfinite(first["loss"]) and np.isfinite(last["loss"])
    assert last["lm_loss"] < first["lm_loss"]
    if dtype == "float16":
        assert float(trainer.optimizer.dynamic_scale) > 0


@pytest.mark.slow  # builds and traces an HRM trainer
def test_hrm_baseline_uses_q_continue_halting_and_bootstrapped_target(spec):
    got = act.halting(
        tf.constant([1, 1]),
        tf.constant([0.5, 0.5]),
        tf.constant([0, 0]),
        halt_max_steps=16,
        training=True,
        halt_rule="q_halt_vs_continue",
        q_continue=tf.constant([1.0, 0.0]),
    ).numpy()
    np.testing.assert_array_equal(got, [False, True])  # q_halt > q_continue, not q_halt > 0
    c = small_config(spec.data_dir)
    c.model.arch = "hrm"
    del c.model.mlp_t, c.model.attention_window  # HRM's blocks are attention only
    c.model.pos_encodings = "rope"
    c.model.H_cycles, c.model.L_cycles = 1, 1
    c.act.halt_rule = "q_halt_vs_continue"  # what configs/presets.hrm sets
    c.act.q_continue_target = True
    trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=4)
    core = trainer._core_for_stage(0)
    batch = next(iter(input_pipeline.make_train_dataset(spec, 16, seed=0)))
    _, grads, _, sums = core(trainer.carry.read(), batch, tf.zeros([16], tf.int32), 1.0)
    assert "q_continue_loss" in sums and float(sums["q_continue_loss"]) > 0
    assert float(sums["loss"]) == pytest.approx(
        float(sums["lm_loss"])
        + 0.5 * (float(sums["q_halt_loss"]) + float(sums["q_continue_loss"])),
        rel=1e-5,
    )
    assert all(g is not None for g in grads)


@pytest.mark.slow  # builds and traces two trainers
def test_recursion_regulariser_adds_the_last_step_penalty_and_its_gradient(spec):
    """contrib04: loss(λ) = loss(0) + λ Σ_b mean (z_H(T) − z_H(T−1))², with gradient from that term."""
    batch = next(iter(input_pipeline.make_train_dataset(spec, 16, seed=0)))
    results = {}
    for lam in (0.0, 0.5):
        c = small_config(spec.data_dir)
        c.model.H_cycles, c.model.L_cycles = 2, 2
        c.act.recursion_reg = lam
        trainer = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=4)
        core = trainer._core_for_stage(0)
        _, grads, _, sums = core(trainer.carry.read(), batch, tf.zeros([16], tf.int32), 1.0)
        results[lam] = (float(sums["loss"]), [g.numpy() for g in grads], trainer.model)
    model = results[0.5][2]
    carry = model.initial_carry(16)  # a fresh carry: every slot starts from H_init / L_init
    z_H = carry["z_H"]
    rows = model.gather_puzzle_rows(batch["puzzle_identifiers"])
    out = model.inner(carry, batch["inputs"], rows)
    # With H_cycles=2, z_H(T−1) is the state after the first (no-gradient) cycle, not the initial one.
    assert not np.allclose(out["z_H_prev"].numpy(), z_H.numpy())
    d = out["z_H_grad"].numpy().astype(np.float64) - out["z_H_prev"].numpy()
    want = 0.5 * np.sum(np.mean(d**2, axis=(1, 2)))
    assert want > 0
    assert results[0.5][0] == pytest.approx(results[0.0][0] + want, rel=1e-5)
    # Same weights (same seed), different gradients: the penalty back-propagates.
    diffs = [np.abs(a - b).max() for a, b in zip(results[0.5][1], results[0.0][1])]
    assert max(diffs) > 0 and all(np.isfinite(g).all() for g in results[0.5][1])
