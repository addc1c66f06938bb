"""Trainer internals a pod needs: one gradient all-reduce per step, a cached eval step that passes the
batch features its evaluators read, and the float32 matmul precision switch."""

import numpy as np
import pytest
import tensorflow as tf

from configs import quickstart
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import runtime
from trm_tf.data import eval_input, input_pipeline
from trm_tf.trainer import Trainer

STEPS = 3


@pytest.fixture(scope="module", autouse=True)
def restore_tf32():
    """Trainer.__init__ sets the process-wide matmul precision; give the next module TF's state back."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return build_tiny_sudoku(str(tmp_path_factory.mktemp("tfds")))


def tiny_config(spec):
    c = quickstart.get_config("runlocal")
    c.model.hidden_size = 16
    c.model.puzzle_emb_ndim = 16
    c.model.num_heads = 2
    c.model.L_layers = 1
    c.model.H_cycles, c.model.L_cycles, c.act.halt_max_steps = 1, 1, 2
    c.train.global_batch_size = 8
    c.eval.global_batch_size = 8
    c.runtime.jit_compile = "false"
    c.optim.lr_warmup_steps = 1
    return c


def _run(strategy, spec):
    trainer = Trainer(tiny_config(spec), strategy, spec, total_steps=10)
    c = trainer.config
    it = iter(input_pipeline.distribute_train(strategy, spec, c.train.global_batch_size, c.seed))
    trainer.train_loop(it, STEPS)
    return trainer, it


@pytest.fixture(scope="module")
def default_run(spec):
    return _run(tf.distribute.get_strategy(), spec)


@pytest.fixture(scope="module")
def mirrored_run(spec):
    return _run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), spec)


def _count_ops(graph_def, op_type):
    n = sum(node.op == op_type for node in graph_def.node)
    return n + sum(node.op == op_type for f in graph_def.library.function for node in f.node_def)


# ----------------------------------------------------------------------------- one all-reduce


def test_one_gradient_all_reduce_per_step_and_mirrored_equals_default(default_run, mirrored_run):
    trainer, it = mirrored_run
    strategy = trainer.strategy
    loop = trainer._train_loops[0]
    got = _count_ops(
        loop.get_concrete_function(it, tf.constant(STEPS, tf.int32)).graph.as_graph_def(),
        "CollectiveReduceV2",
    )
    # Independent reference: what ONE SUM all-reduce of tensors shaped like the gradients lowers to
    # under this strategy (the implementation packs tensors, so count ops, not tensors).
    shapes = [v.shape for v in trainer.model.trainable_variables]

    @tf.function
    def one_reduce():
        def fn():
            grads = [tf.zeros(s) for s in shapes]
            return tf.distribute.get_replica_context().all_reduce("sum", grads)

        return strategy.run(fn)

    want = _count_ops(one_reduce.get_concrete_function().graph.as_graph_def(), "CollectiveReduceV2")
    assert want >= 1
    assert got == want, f"{got} CollectiveReduceV2 ops in the train loop, one reduction is {want}"

    # And the result still equals the single-device run on the same global batches.
    single = default_run[0]
    assert int(trainer.step.numpy()) == int(single.step.numpy()) == STEPS
    for i, (a, b) in enumerate(
        zip(single.model.trainable_variables, trainer.model.trainable_variables, strict=True)
    ):
        for copy in b.value.values:
            np.testing.assert_allclose(
                copy.numpy(), a.numpy(), rtol=1e-4, atol=2e-5, err_msg=str(i)
            )
    for s1, s2 in zip(single.ema.shadows, trainer.ema.shadows, strict=True):
        np.testing.assert_allclose(s2.numpy(), s1.numpy(), rtol=1e-4, atol=2e-5)
    m1, m2 = single.read_metrics(STEPS), trainer.read_metrics(STEPS)
    # The logged norm is that of the summed gradients (the same on one device and on two).
    assert m1["grad_norm"] > 0
    assert m2["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-4)
    assert m2["loss"] == pytest.approx(m1["loss"], rel=1e-4)
    # The weights really moved from their initial values (a fresh trainer starts from the same seed).
    fresh = Trainer(tiny_config(single.spec), tf.distribute.get_strategy(), single.spec, 10)
    delta = max(
        float(np.abs(a.numpy() - f.numpy()).max())
        for a, f in zip(single.model.trainable_variables, fresh.model.trainable_variables)
    )
    assert delta > 1e-4


# ----------------------------------------------------------------------------- eval step


class Recorder:
    """An evaluator that keeps every batch's outputs and reads every batch feature besides the
    accuracy's sums."""

    name = "recorder"
    summed = ("sums", "exact_per_step")

    def __init__(self, rows):
        self.rows, self.seen = ("preds", "q_halt", *rows), []

    def begin(self):
        pass

    def update(self, out):
        self.seen.append(out)

    def reduce(self, strategy):
        pass

    def result(self):
        return {}


def test_eval_step_traced_once_and_passes_requested_batch_features(mirrored_run, spec):
    trainer, _ = mirrored_run
    strategy = trainer.strategy
    calls = []
    core = trainer._eval_core

    def counting_core(b):  # runs once per replica each time the eval step is traced
        calls.append(1)
        return core(b)

    weights = [[c.numpy() for c in v.value.values] for v in trainer.model.trainable_variables]
    trainer._eval_core = counting_core
    try:
        seen = []
        results = []
        for use_ema in (True, False):
            dist, steps = eval_input.distribute_eval(strategy, spec, 8, subset_size=16)
            keys = set(dist.element_spec)
            recorder = Recorder(sorted(keys))
            results.append(
                trainer.evaluate(
                    dist, steps, use_ema=use_ema, on_batch=seen.append, evaluators=[recorder]
                )
            )
            assert recorder.seen == seen[-steps:]  # on_batch sees what the evaluators see
    finally:
        trainer._eval_core = core
    assert len(calls) == strategy.num_replicas_in_sync, "the eval step was traced more than once"
    assert {"mask", "inputs", "labels", "puzzle_identifiers"} <= keys
    assert len(seen) == 2 * steps  # one output per batch, not per replica
    replicas = strategy.num_replicas_in_sync
    for o in seen:
        assert o.keys() == keys | {"preds", "q_halt", "sums", "exact_per_step"}
        assert all(isinstance(v, np.ndarray) for k, v in o.items() if k != "sums")
        # The rows of both replicas, concatenated; the sums per replica.
        assert o["inputs"].shape == o["preds"].shape == (8, spec.seq_len)
        assert o["mask"].shape == (8,) and o["mask"].dtype == bool
        assert o["exact_per_step"].shape == (replicas, 2)
        assert all(v.shape == (replicas,) for v in o["sums"].values())
    # The pass-through features are the batch's own rows: the 16 distinct puzzles of the subset, each
    # exactly once per evaluation, with the mask set on the real rows only.
    first_eval = seen[: len(seen) // 2]
    rows = np.concatenate([o["inputs"] for o in first_eval])
    mask = np.concatenate([o["mask"] for o in first_eval])
    count = sum(o["sums"]["count"].sum() for o in first_eval)
    assert len({r.tobytes() for r in rows[mask]}) == mask.sum() == count == 16
    # The EMA evaluation swapped the weights in and out around the cached function: bit-exact.
    for v, copies in zip(trainer.model.trainable_variables, weights, strict=True):
        for c, want in zip(v.value.values, copies, strict=True):
            np.testing.assert_array_equal(c.numpy(), want)


# ----------------------------------------------------------------------------- matmul precision


def _dot_lines(fn, *args):
    hlo = fn.experimental_get_compiler_ir(*args)(stage="hlo")
    return [line for line in hlo.splitlines() if " dot(" in line]


def test_set_matmul_precision_lowers_float32_dots_at_highest():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    x = tf.ones([4, 4])
    try:
        for mode, dtype, want in [
            ("highest", "bfloat16", "highest"),
            ("auto", "float32", "highest"),
            ("default", "float32", "default"),
            ("auto", "bfloat16", "default"),
            ("auto", "float16", "default"),
            ("HIGHEST", "float32", "highest"),
        ]:
            assert runtime.set_matmul_precision(mode, dtype) == want
            # A new function per setting: the precision is fixed when a function is lowered.
            fn = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)
            dots = _dot_lines(fn, x, x)
            assert len(dots) == 1
            assert ("operand_precision={highest,highest}" in dots[0]) == (want == "highest"), dots
        with pytest.raises(ValueError, match="matmul_precision"):
            runtime.set_matmul_precision("fast", "float32")
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def test_trainer_resolves_and_applies_matmul_precision(spec):
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        c = tiny_config(spec)
        c.model.forward_dtype = "float32"
        c.runtime.matmul_precision = "auto"
        tf.config.experimental.enable_tensor_float_32_execution(True)
        t = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=10)
        assert t.matmul_precision == "highest"
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        c.runtime.matmul_precision = "default"
        t = Trainer(c, tf.distribute.get_strategy(), spec, total_steps=10)
        assert t.matmul_precision == "default"
        assert tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)
