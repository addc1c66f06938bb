"""Trainer.evaluate's host cost and results: ONE device-to-host fetch per eval batch (accuracy only and ARC
voting, on the default strategy and on two mirrored replicas), and the same numbers, votes and per-batch
outputs as fetching every eval-core output of every replica one by one."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import ops

from configs import quickstart
from tests.testing.tiny_datasets import build_tiny_arc, build_tiny_sudoku
from trm_tf import evaluators
from trm_tf.data import eval_input, input_pipeline
from trm_tf.trainer import Trainer


@pytest.fixture(scope="module", autouse=True)
def restore_tf32():
    """Trainer.__init__ sets the process-wide matmul precision; give the next module TF's state back."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _config(kind: str, data_dir: str):
    """A tiny model (two supervision steps) on the tiny Sudoku or ARC dataset; ARC with its voting."""
    c = quickstart.get_config("runlocal")
    c.data.data_dir, c.data.build_if_missing = data_dir, False
    c.model.hidden_size = c.model.puzzle_emb_ndim = 16
    c.model.num_heads, c.model.L_layers = 2, 1
    c.model.H_cycles, c.model.L_cycles, c.act.halt_max_steps = 1, 1, 2
    c.train.global_batch_size, c.eval.global_batch_size = 8, 8
    c.runtime.jit_compile = "false"
    c.optim.lr_warmup_steps = 1
    if kind == "arc":
        c.data.name, c.data.config = "arc_agi", "arc1_aug10"
        c.eval.evaluators = ("accuracy", "arc")
        c.model.mlp_t, c.model.pos_encodings = False, "rope"
        c.eval.global_batch_size = 16
    return c


_RUNS: dict = {}


def _run(kind, strategy_name, data_dir):
    """A Trainer (random weights, two train steps so the EMA differs), its evaluators and eval stream."""
    key = (kind, strategy_name)
    if key not in _RUNS:
        spec = build_tiny_sudoku(data_dir) if kind == "sudoku" else build_tiny_arc(data_dir)
        c = _config(kind, data_dir)
        strategy = (
            tf.distribute.get_strategy()
            if strategy_name == "default"
            else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        )
        trainer = Trainer(c, strategy, spec, total_steps=10)
        it = iter(input_pipeline.distribute_train(strategy, spec, c.train.global_batch_size, 0))
        trainer.train_loop(it, 2)
        used = evaluators.from_config(c, spec, trainer.eval_halt_max_steps)
        dist, steps = eval_input.distribute_eval(
            strategy,
            spec,
            c.eval.global_batch_size,
            -1,
            extra_features=evaluators.device_features(used),
            task_names=evaluators.task_names(used),
        )
        _RUNS[key] = trainer, used, dist, steps
    return _RUNS[key]


class _Fetches:
    """Counts device-to-host copies: `.numpy()`, `float()`, `int()` and `bool()` of an eager tensor go
    through `_EagerTensorBase._numpy` in TF 2.20. `np.asarray(tensor)` does not: NumPy reads the tensor
    through its buffer protocol (C), which Python cannot count, so the tests below also check that
    everything evaluate hands to the evaluators is already numpy."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = ops._EagerTensorBase._numpy

        def counting(tensor):
            self.count += 1
            return original(tensor)

        monkeypatch.setattr(ops._EagerTensorBase, "_numpy", counting)


def test_fetch_counter_sees_every_way_to_read_a_tensor(monkeypatch):
    fetches = _Fetches(monkeypatch)
    t = tf.constant([1.5])
    t.numpy(), float(t[0]), int(t[0]), bool(t[0])
    assert fetches.count == 4
    np.asarray(t), np.array(t)  # the buffer protocol: not seen (hence the numpy checks below)
    assert fetches.count == 4


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
@pytest.mark.parametrize("kind", ["sudoku", "arc"])
def test_one_fetch_per_eval_batch(kind, strategy_name, data_dir, monkeypatch):
    trainer, used, dist, steps = _run(kind, strategy_name, data_dir)
    assert steps >= 3
    assert [e.name for e in used] == (["accuracy", "arc"] if kind == "arc" else ["accuracy"])
    trainer.evaluate(dist, steps, evaluators=used)  # traced and compiled outside the count
    fetches = _Fetches(monkeypatch)
    counts = []
    for n in (1, 3):  # differencing two lengths leaves the per-batch cost (iterator set-up cancels)
        before = fetches.count
        trainer.evaluate(dist, n, evaluators=used)
        counts.append(fetches.count - before)
    per_batch = (counts[1] - counts[0]) / 2
    assert per_batch == 1, f"{per_batch} device-to-host fetches per eval batch ({counts})"
    # ... and nothing uncounted: the evaluators get numpy, never a tensor np.asarray could copy.
    seen = []
    trainer.evaluate(dist, 1, evaluators=used, on_batch=seen.append)
    leaves = tf.nest.flatten(seen)
    assert leaves and all(isinstance(v, np.ndarray) for v in leaves)
    # What travels: the accuracy's sums always; per-row fields only for ARC, and only those it reads.
    layouts = [v for k, v in trainer._eval_layouts.items() if k[:2] == _requested(used)]
    assert len(layouts) == 1
    layout = layouts[0]
    assert set(layout.summed) == {"sums", "exact_per_step", "token_per_step"}
    if kind == "sudoku":
        assert layout.rows == {} and layout.row_width == 0
    else:
        assert set(layout.rows) == {
            "preds",
            "q_halt",
            "inputs",
            "mask",
            "task_id",
            "test_index",
            "transform_id",
            "color_map",
        }  # no labels, no puzzle_identifiers


def _requested(used):
    summed = tuple(dict.fromkeys(f for e in used for f in e.summed))
    rows = tuple(dict.fromkeys(f for e in used for f in e.rows))
    return summed, rows


def _scripted_core(halt_max_steps: int):
    """A deterministic stand-in for the eval core, with its output structure and dtypes. (The real core
    is not bit-reproducible from one call to the next on CPU: its loss sums vary in the last bits with
    the thread pool, so comparing two runs of it could not show that packing is exact.) Row values are
    sines of the inputs (floats with every mantissa bit used); predictions are each row's labels, or
    its inputs on every other row (so ARC's test pairs get right and wrong votes, ranked by q)."""

    def core(b):
        x = tf.cast(b["inputs"], tf.float32)
        v = tf.sin(tf.reduce_sum(x * tf.range(1.0, x.shape[1] + 1.0), axis=1) * 1e-3)  # [B]
        real = tf.cast(b["mask"], tf.float32)
        keys = ("count", "accuracy", "exact_accuracy", "lm_loss", "q_halt_accuracy", "steps")
        sums = {k: tf.reduce_sum(real * (v + i) / 3.0) for i, k in enumerate(keys)}
        sums["count"] = tf.reduce_sum(real)
        per_step = tf.stack(
            [tf.reduce_sum(real * v * (k + 1) / 7.0) for k in range(halt_max_steps)]
        )
        odd = tf.reshape(tf.range(tf.shape(x)[0]) % 2 == 1, [-1, 1])
        labels = tf.where(b["labels"] < 0, 0, b["labels"])
        return {
            "sums": sums,
            "exact_per_step": per_step,
            "token_per_step": per_step * 0.37,
            "preds": tf.where(odd, b["inputs"], labels),
            "q_halt": 4.0 * v,
        }

    return core


def _per_tensor_outputs(trainer, dist, steps):
    """Every eval-core output and batch feature of every replica of every batch, each fetched on its
    own (the straightforward way): a list per batch of per-replica dicts of numpy arrays."""
    strategy = trainer.strategy

    @tf.function
    def step(batch):
        def fn(b):
            out = trainer._eval_core(b)
            out.update({k: v for k, v in b.items() if k not in out})
            return out

        return strategy.run(fn, args=(batch,))

    batches = []
    it = iter(dist)
    for _ in range(steps):
        out = step(next(it))
        flat = [strategy.experimental_local_results(x) for x in tf.nest.flatten(out)]
        batches.append(
            [
                tf.nest.pack_sequence_as(out, [p[r].numpy() for p in flat])
                for r in range(len(flat[0]))
            ]
        )
    return batches


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
@pytest.mark.parametrize("kind", ["sudoku", "arc"])
def test_packed_outputs_equal_per_tensor_fetches(kind, strategy_name, data_dir):
    trainer, used, dist, steps = _run(kind, strategy_name, data_dir)
    real_core = trainer._eval_core
    trainer._eval_core = _scripted_core(trainer.eval_halt_max_steps)
    trainer._eval_steps.clear()  # trace the eval step again around the scripted core
    try:
        seen = []
        got = trainer.evaluate(dist, steps, evaluators=used, on_batch=seen.append)
        votes = [e.votes.state() for e in used if e.name == "arc"]
        submission = [e.votes.submission(e.truth) for e in used if e.name == "arc"]
        batches = _per_tensor_outputs(trainer, dist, steps)
    finally:
        trainer._eval_core = real_core
        trainer._eval_steps.clear()
    replicas = trainer.strategy.num_replicas_in_sync
    assert len(batches) == len(seen) == steps and all(len(b) == replicas for b in batches)

    # The reference: the same evaluators fed one replica at a time with the per-tensor fetches.
    ref = evaluators.from_config(trainer.config, trainer.spec, trainer.eval_halt_max_steps)
    for e in ref:
        e.begin()
    for per_replica in batches:
        for o in per_replica:
            one = dict(o)  # one replica's partial sums: a leading replica axis of 1
            for k in ("sums", "exact_per_step", "token_per_step"):
                one[k] = tf.nest.map_structure(lambda v: np.asarray(v)[None], o[k])
            for e in ref:
                e.update(one)
    want = {}
    for e in ref:
        e.reduce(trainer.strategy)
        want.update(e.result())
    assert got == want  # exactly: every float bit for bit
    assert got["num_examples"] == trainer.spec.num_test_examples
    assert 0 < got["lm_loss"] != round(got["lm_loss"], 4)  # sums with every bit in use
    if kind == "arc":
        assert votes == [ref[1].votes.state()] and votes[0]["votes"]
        assert submission == [ref[1].votes.submission(ref[1].truth)]
        assert got["ARC/pass@2"] == 1.0  # right and wrong votes on every pair
        assert all(len(grids) == 2 for _, _, grids in votes[0]["votes"])

    # Each batch's unpacked outputs are the replicas' per-tensor values: sums stacked over replicas,
    # row fields concatenated in replica order, in their own dtypes, padding rows included.
    summed, rows = _requested(used)
    for out, per_replica in zip(seen, batches, strict=True):
        assert set(out) == set(summed) | set(rows)
        stacked = tf.nest.map_structure(lambda *v: np.stack(v), *per_replica)
        for k in summed:
            for a, b in zip(tf.nest.flatten(out[k]), tf.nest.flatten(stacked[k]), strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
        for k in rows:
            b = np.concatenate([o[k] for o in per_replica])
            assert out[k].dtype == b.dtype and out[k].shape == b.shape
            np.testing.assert_array_equal(out[k], b)
    if kind == "arc":
        assert not np.concatenate([o["mask"] for o in seen]).all()  # the last batch is padded
