"""The Trainer: model, optimizers, EMA, ACT carry and metrics under a strategy, and its compiled loops.

The split of TF Model Garden's Orbit trainers (`tensorflow/models`, `orbit/`): this object owns the
variables and the compiled inner loops (`train_loop` runs `steps_per_loop` supervision steps in one
tf.function; `evaluate` runs the eval set; `report` brings a loop's metrics to the host in one fetch);
`trm_tf.train.run` owns the Python outer loop (logging, checkpoints, evaluation cadence, profiler window,
NaN guard). The step is kept on the host (`host_step`): a loop fetches nothing.

One train step, in replica context (`strategy.run`):
  1. the exploration draws for the global batch from a stateless seed (seed, step), sliced to this replica;
  2. the XLA-compiled forward/backward of one ACT supervision step (trm_tf.act.make_train_core);
  3. one SUM all-reduce of the dense gradients (their norm is logged), then AdamATan2 (or another
     optimizer of `optim.OPTIMIZERS`) applies the reduced gradients as given (Keras' own second
     all-reduce is switched off);
  4. sparse sign-SGD on the puzzle-embedding rows of the global batch;
  5. EMA of the dense weights; the carry and the metric sums are written back to per-replica variables.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from trm_tf import act, distribute, optim, runtime
from trm_tf.carry import CarryState
from trm_tf.data.spec import DatasetSpec
from trm_tf.ema import EMA
from trm_tf.evaluators.accuracy import AccuracyEvaluator
from trm_tf.metrics import LoopReport, MetricSums, learning_rate_fn, learning_rates
from trm_tf.models import build_model
from trm_tf.schedule import lr_at_step

_DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


def curriculum_stages(config, total_steps: int) -> list[tuple[int, tuple[int, int]]]:
    """[(first step index, (H_cycles, L_cycles)), ...] of the curriculum recursion (contrib01 / E4.1).

    Without a curriculum: one stage at the model's depth. With one: `num_stages` stages whose depths go
    linearly (rounded) from (start_H_cycles, start_L_cycles) to the model's (H_cycles, L_cycles); the first
    num_stages - 1 stages split the first `ramp_fraction` of training equally, the last runs to the end.
    """
    m, c = config.model, config.curriculum
    final = (int(m.H_cycles), int(m.L_cycles))
    if not c.enabled or c.num_stages <= 1:
        return [(0, final)]
    n = int(c.num_stages)
    ramp = int(round(float(c.ramp_fraction) * total_steps))
    stages = []
    for s in range(n):
        frac = s / (n - 1)
        h = int(round(c.start_H_cycles + (final[0] - c.start_H_cycles) * frac))
        l_ = int(round(c.start_L_cycles + (final[1] - c.start_L_cycles) * frac))
        stages.append((int(round(ramp * s / (n - 1))), (max(h, 1), max(l_, 1))))
    return stages


def resolve_schedule(config, spec: DatasetSpec) -> tuple[int, int]:
    """(total_steps, eval_every_steps) from the config, deriving them as the reference does
    (docs/model.md#training-loop).

    The reference trains `epochs / eval_interval` iterations and evaluates after each, the last one at
    the end of training. When both counts come from epochs, evaluations are therefore every
    ceil(total / n) steps for n = epochs / eval_interval_epochs: n - 1 periodic ones and the final one at
    `total_steps`. (int(eval_interval_epochs x steps per epoch) would put an n-th periodic evaluation a
    few steps before the final one, which for ARC would pool that checkpoint's votes twice.)
    """
    t = config.train
    per_epoch = spec.steps_per_epoch(t.global_batch_size)
    derived = t.total_steps is None
    total = int(t.epochs * per_epoch) if derived else int(t.total_steps)
    every = t.eval_every_steps
    if every is None:
        n = t.epochs / t.eval_interval_epochs if t.eval_interval_epochs > 0 else 0
        if derived and n >= 1 and n == int(n):
            every = -(-total // int(n))
        else:
            every = int(t.eval_interval_epochs * per_epoch)
    return total, max(1, int(every))


def _core_kwargs(a, global_batch: int, halt_max_steps: int, jit_compile: bool) -> dict:
    """Keyword arguments of `act.make_train_core` from the config's act section."""
    return dict(
        global_batch_size=global_batch,
        halt_max_steps=halt_max_steps,
        loss_type=a.loss_type,
        halt_penalty=float(a.halt_penalty),
        recursion_reg=float(a.recursion_reg),
        jit_compile=jit_compile,
        # HRM halts on q_halt > q_continue and learns q_continue from a bootstrapped target.
        q_continue_target=bool(a.q_continue_target),
        # q_halt > 0 (TRM) or q_halt > q_continue (HRM, transformer)
        halt_rule=a.halt_rule,
    )


def resolve_forward_dtype(config, strategy: tf.distribute.Strategy) -> str:
    """Replaces `model.forward_dtype="auto"` in `config` by the dtype this machine runs fastest
    (`runtime.resolve_forward_dtype`: bfloat16 on accelerators and AMX CPUs, float32 on other CPUs)
    and returns the dtype. Idempotent; launch.py calls it before config.json is written, so a resume
    on a machine that resolves differently is refused as a change of model.forward_dtype."""
    m = config.model
    on_cpu = distribute.runs_on_cpu(strategy)
    resolved = runtime.resolve_forward_dtype(m.forward_dtype, on_cpu)
    if resolved != m.forward_dtype:
        unit = runtime.cpu_bf16_matrix_unit() if on_cpu else "accelerator"
        logging.info("model.forward_dtype=auto -> %s (bfloat16 matrix unit: %s)", resolved, unit)
        m.forward_dtype = resolved
    return resolved


class Trainer:
    """Owns every variable of a run; see the module docstring for one step."""

    def __init__(
        self, config, strategy: tf.distribute.Strategy, spec: DatasetSpec, total_steps: int
    ):
        self.config = config
        self.strategy = strategy
        self.spec = spec
        self.total_steps = total_steps
        self.num_replicas = strategy.num_replicas_in_sync
        g = config.train.global_batch_size
        if g % self.num_replicas:
            raise ValueError(
                f"train.global_batch_size={g} must be divisible by the {self.num_replicas} replicas "
                "(per-replica batches must have a static, equal size)"
            )
        self.global_batch = g
        self.per_replica_batch = g // self.num_replicas
        m = config.model
        a = config.act
        self.halt_max_steps = int(a.halt_max_steps)
        self.eval_halt_max_steps = int(config.eval.halt_max_steps or self.halt_max_steps)
        self.exploration_prob = float(a.halt_exploration_prob)
        final = a.halt_exploration_final
        self.exploration_final = self.exploration_prob if final is None else float(final)
        self.stages = curriculum_stages(config, total_steps)
        resolve_forward_dtype(config, strategy)
        if m.forward_dtype not in _DTYPES:
            raise ValueError(
                f"model.forward_dtype must be one of {sorted(_DTYPES)}, got {m.forward_dtype!r}"
            )
        # Before anything is traced: the precision is fixed when a function is lowered.
        self.matmul_precision = runtime.set_matmul_precision(
            config.runtime.matmul_precision, m.forward_dtype
        )
        self.jit_compile = distribute.resolve_jit_compile(config.runtime.jit_compile, strategy, m)
        on_cpu = distribute.runs_on_cpu(strategy)
        # The bfloat16 CPU step: oneDNN's matmuls, XLA fusions of the element-wise work between them.
        self.fusion_clusters = (
            runtime.uses_fusion_clusters(
                config.runtime.jit_compile, self.jit_compile, m.forward_dtype, on_cpu
            )
            and runtime.cluster_fusible_ops()
        )
        self.cpu_bf16_matrix_unit = runtime.cpu_bf16_matrix_unit() if on_cpu else None
        with strategy.scope():
            # The run's seed also seeds the initial weights (unless the model section pins its own).
            self.model = build_model(
                {**dict(m.items()), "seed": m.get("seed", config.seed)},
                vocab_size=spec.vocab_size,
                seq_len=spec.seq_len,
                num_puzzle_identifiers=spec.num_puzzle_identifiers,
            )
            self.model.build_variables()
            self._build_optimizers(config.optim, m.forward_dtype)
            self._build_state(spec, m.forward_dtype)
        self._core_kwargs = _core_kwargs(a, g, self.halt_max_steps, self.jit_compile)
        self._eval_core = act.make_eval_core(
            self.model,
            halt_max_steps=self.eval_halt_max_steps,
            loss_type=a.loss_type,
            jit_compile=self.jit_compile,
            # the adaptive-halting metrics stop examples by the training's Q test
            halt_rule=self._core_kwargs["halt_rule"],
        )
        self._train_loops: dict = {}
        self._host_step: int | None = None  # the step as the host knows it (see host_step)
        self._report = self.metrics.report_fn(
            strategy, learning_rate_fn(config.optim, self.step, total_steps)
        )
        self._reset = self.metrics.reset_fn()
        self._cores: dict = {}  # per stage (_core_for_stage)
        self._single_steps: dict = {}  # train_steps_marked's compiled single step, per stage
        # Built on the first evaluation for each choice of outputs, then reused (no retrace per eval).
        self._eval_steps: dict = {}
        self._eval_layouts: dict = {}  # (summed, rows, batch signature) -> _EvalLayout

    def _build_optimizers(self, o, forward_dtype: str) -> None:
        """The dense optimizer (schedule, loss scaling), the puzzle-row optimizer and the EMA."""
        self.optimizer = optim.make_optimizer(o, self.total_steps)
        self.loss_scaling = forward_dtype == "float16"
        if self.loss_scaling:  # float16: dynamic loss scaling (bfloat16 and float32 need none)
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.model.trainable_variables)
        # The step all-reduces the gradients itself (once) and hands the sums to the optimizer.
        optim.apply_gradients_as_given(self.optimizer)
        self.sparse_opt = (
            optim.SparseSignSGD(self.model.puzzle_emb, o.puzzle_emb_weight_decay)
            if self.model.puzzle_emb is not None
            else None
        )
        self.ema = EMA(self.model.trainable_variables, o.ema_rate) if o.ema else None

    def _build_state(self, spec: DatasetSpec, forward_dtype: str) -> None:
        """The step counter, the per-replica ACT carry and the metric sums."""
        self.step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="global_step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.carry = CarryState(
            self.per_replica_batch,
            self.model.total_len,
            spec.seq_len,
            self.model.hidden_size,
            _DTYPES[forward_dtype],
            spec=self.model.carry_spec(),
            # Several worker processes broadcast initial values without a bfloat16 kernel.
            storage_dtype=tf.float32
            if distribute.num_workers(self.strategy) > 1 and forward_dtype == "bfloat16"
            else None,
        )
        self.metrics = MetricSums()

    # ------------------------------------------------------------------ checkpoint state
    def checkpoint(self) -> tf.train.Checkpoint:
        """Everything but the carry (per-replica; saved per host by trm_tf.checkpointing)."""
        # The model tracks its puzzle embedding and H/L init itself (no second copy of a 2 GB table).
        items = dict(model=self.model, optimizer=self.optimizer, step=self.step)
        if self.ema is not None:
            items["ema"] = self.ema
        return tf.train.Checkpoint(**items)

    # ------------------------------------------------------------------ training
    def stage_at(self, step: int) -> int:
        """Index of the curriculum stage that optimizer step `step + 1` belongs to (0 without one)."""
        return sum(1 for start, _ in self.stages[1:] if step >= start)

    def steps_to_stage_change(self, step: int) -> int:
        """Steps from `step` until the next stage starts (a large number when none follows)."""
        later = [start - step for start, _ in self.stages if start > step]
        return min(later) if later else 1 << 62

    def _core_for_stage(self, stage: int):
        """The stage's compiled core, built once: the loop and the profiler window's single step share it
        (and so its XLA compilation)."""
        if stage not in self._cores:
            cycles = self.stages[stage][1] if len(self.stages) > 1 else None
            self._cores[stage] = act.make_train_core(self.model, cycles=cycles, **self._core_kwargs)
        return self._cores[stage]

    def _make_step_fn(self, core):
        o = self.config.optim

        def step_fn(batch):
            step = self.step.read_value() + 1  # 1-based, as the reference's schedule and draws
            prob = act.exploration_prob_at(
                step, self.total_steps, self.exploration_prob, self.exploration_final
            )
            min_halt = act.replica_slice(
                act.exploration_draws(
                    self.config.seed, step, self.global_batch, prob, self.halt_max_steps
                ),
                self.per_replica_batch,
            )
            scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if self.loss_scaling else 1.0
            carry = self.carry.read()
            new_carry, grads, row_grads, sums = core(carry, batch, min_halt, scale)
            # The one gradient all-reduce of the step: its sums give the logged norm and are what the
            # optimizer applies (it does not reduce again; see optim.apply_gradients_as_given).
            ctx = tf.distribute.get_replica_context()
            reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            grad_norm = tf.linalg.global_norm(reduced) / scale
            self.optimizer.apply_gradients(zip(reduced, self.model.trainable_variables))
            if self.sparse_opt is not None:
                lr = lr_at_step(
                    step, o.puzzle_emb_lr, o.lr_warmup_steps, self.total_steps, o.lr_min_ratio
                )
                if self.loss_scaling:  # a skipped (non-finite) step must not move the rows either
                    finite = tf.math.is_finite(grad_norm)
                    lr = tf.where(finite, lr, 0.0)
                    row_grads = tf.where(tf.math.is_finite(row_grads), row_grads, 0.0)
                self.sparse_opt.apply(new_carry["puzzle_identifiers"], row_grads, lr)
            if self.ema is not None:
                self.ema.update()
            self.carry.assign(new_carry)
            self.metrics.add(sums, grad_norm)
            self.step.assign_add(1)

        return step_fn

    @property
    def host_step(self) -> int:
        """The global step, kept on the host: read from the variable once (after a restore, see
        `sync_step`), then advanced by the steps each `train_loop` ran, so no loop fetches it."""
        if self._host_step is None:
            self._host_step = int(self.step.numpy())
        return self._host_step

    def sync_step(self) -> None:
        """Forgets the host's step: the next `host_step` reads the variable (call after a restore)."""
        self._host_step = None

    def train_loop(self, iterator, num_steps: int):
        """Runs `num_steps` supervision steps in one tf.function call (all in one curriculum stage);
        fetches nothing from the devices."""
        start = self.host_step
        stage = self.stage_at(start)
        if num_steps > self.steps_to_stage_change(start):
            raise ValueError(f"loop of {num_steps} steps from {start} crosses a curriculum stage")
        if stage not in self._train_loops:
            step_fn = self._make_step_fn(self._core_for_stage(stage))

            @tf.function
            def loop(it, n):
                for _ in tf.range(n):
                    self.strategy.run(step_fn, args=(next(it),))

            self._train_loops[stage] = loop
        self._train_loops[stage](iterator, tf.constant(num_steps, tf.int32))
        self._host_step = start + num_steps

    def report(self, stop_flag: bool = False) -> LoopReport:
        """The metric sums since the last reset, the gradient norm and the preemption flags of every
        worker process (`stop_flag`: this process's): one compiled reduction, ONE device->host fetch."""
        flag = tf.constant(1.0 if stop_flag else 0.0, tf.float32)
        return LoopReport(tuple(self.metrics.sums), self._report(flag).numpy())

    def train_steps_marked(self, iterator, start: int, num_steps: int) -> None:
        """Runs steps `start`+1 … `start`+`num_steps` as one call each of a compiled single step, each call
        inside its profiler step marker `Trace("train", step_num=k, _r=1)`: the profiler window's steps.

        The step is `train_loop`'s (same step function, batches and numerics) without its `tf.range`
        loop, because xprof's step analysis takes the iterations of a TF while loop in a trace as its
        steps and then ignores the markers: a window run through `train_loop` shows "No step marker
        observed" on the Overview and input-pipeline pages. `start` is the current step (passed, not
        read from the replicas). The single step is compiled once per curriculum stage on its first call.
        """
        stage = self.stage_at(start)
        if num_steps > self.steps_to_stage_change(start):
            raise ValueError(f"{num_steps} steps from {start} cross a curriculum stage")
        if stage not in self._single_steps:
            step_fn = self._make_step_fn(self._core_for_stage(stage))

            @tf.function
            def single_step(it):
                self.strategy.run(step_fn, args=(next(it),))

            self._single_steps[stage] = single_step
        for k in range(start + 1, start + num_steps + 1):
            with tf.profiler.experimental.Trace("train", step_num=k, _r=1):  # a step marker
                self._single_steps[stage](iterator)
        self._host_step = start + num_steps

    def metrics_of(self, report: LoopReport, num_steps: int) -> dict[str, float]:
        """The training metrics of `report` over its `num_steps` steps, normalised as the reference logs
        them, with the learning rates at the report's step."""
        out = report.metrics(num_steps, self.global_batch)
        out.update(learning_rates(self.config.optim, report.lr))
        return out

    def reset_metrics(self) -> None:
        """Zeroes the metric sums (one compiled call, no fetch)."""
        self._reset()

    def read_metrics(self, num_steps: int) -> dict[str, float]:
        """Training metrics over the last `num_steps` steps (one fetch; see `report`)."""
        return self.metrics_of(self.report(), num_steps)

    # ------------------------------------------------------------------ evaluation
    def _eval_step_fn(self, summed: tuple[str, ...], rows: tuple[str, ...]):
        """The compiled eval step returning only `summed` and `rows`, packed: built once per Trainer and
        choice of outputs.

        Each replica runs the eval core and packs what was asked for into one int32 vector
        (`_EvalLayout`): the `summed` outputs (the eval core's metric sums, added up on the host), then
        the `rows` fields (per-row outputs and batch features). The vectors of this process's replicas
        are concatenated in the graph, so a batch is ONE tensor to fetch. One function serves EMA and
        raw weights: the swap changes variable values, not the variables the function captured. It
        retraces only for a batch of another structure or shape; each trace records its layout in
        `self._eval_layouts` under the batch's per-replica signature (`_batch_signature`).
        """
        key = (summed, rows)
        if key not in self._eval_steps:

            def fn(b):
                out = self._eval_core(b)
                layout = _EvalLayout.of(out, b, summed, rows)
                self._eval_layouts[key + (_batch_signature(b),)] = layout
                return layout.pack(out, b)

            @tf.function
            def eval_step(batch):
                packed = self.strategy.run(fn, args=(batch,))
                return tf.concat(self.strategy.experimental_local_results(packed), axis=0)

            self._eval_steps[key] = eval_step
        return self._eval_steps[key]

    def evaluate(
        self, dist_dataset, num_steps: int, use_ema: bool = True, on_batch=None, evaluators=None
    ) -> dict:
        """Evaluates N_sup steps from a fresh carry on every batch; returns the evaluators' results.

        `evaluators` (the interface of `trm_tf.evaluators.base`; default: token/exact/per-step accuracy)
        declare what they read on the host:
        `summed` (eval-core outputs added up over rows: `sums`, `exact_per_step`, `token_per_step`) and
        `rows` (per-row outputs and batch features: `preds`, `q_halt`, `mask`, `inputs`, `task_id`, ...).
        The eval step packs only their union (the eval core runs whole) into one tensor per batch: the
        client makes ONE device-to-host fetch per batch (`_eval_step_fn`).
        Each evaluator gets `begin()`, then `update(out)` once per batch with this process's outputs as
        numpy: every `summed` output with a leading replica axis (this process's replicas' partial sums,
        in replica order) and every `rows` field with this process's replicas' rows concatenated in
        replica order (padding rows included, `mask` False), each in its dtype; then `reduce(strategy)`
        (merges worker processes) and `result()`. `on_batch(out)` sees the same outputs.
        """
        if evaluators is None:
            evaluators = [AccuracyEvaluator(self.eval_halt_max_steps)]
        summed = tuple(dict.fromkeys(f for e in evaluators for f in e.summed))
        rows = tuple(dict.fromkeys(f for e in evaluators for f in e.rows))
        for e in evaluators:
            e.begin()
        eval_step = self._eval_step_fn(summed, rows)
        swap = use_ema and self.ema is not None
        if swap:
            self.ema.swap()
        try:
            it = iter(dist_dataset)
            for i in range(num_steps):
                batch = next(it)
                with tf.profiler.experimental.Trace("eval", step_num=i, _r=1):  # a step marker
                    packed = eval_step(batch)
                key = (summed, rows, _batch_signature(batch, self.strategy))
                o = self._eval_layouts[key].unpack(packed.numpy())  # the batch's one fetch
                for e in evaluators:
                    e.update(o)
                if on_batch is not None:
                    on_batch(o)
        finally:
            if swap:
                self.ema.swap()
        results: dict = {}
        for e in evaluators:
            e.reduce(self.strategy)
            results.update(e.result())
        return results


def _batch_signature(batch: dict, strategy=None) -> tuple:
    """(name, per-replica shape, dtype) of every feature of an eval batch: a replica's batch, or with
    `strategy` a distributed batch on the client. Static shapes only, so nothing is fetched."""
    if strategy is not None:
        batch = {k: strategy.experimental_local_results(v)[0] for k, v in batch.items()}
    return tuple(sorted((k, tuple(v.shape), v.dtype.name) for k, v in batch.items()))


class _EvalLayout:
    """The static layout of one replica's packed eval outputs: an int32 vector holding the `summed`
    outputs flattened, then the `rows` fields as a [rows, width] block.

    Integers (up to 32 bits) and booleans travel as int32, floats (up to 32 bits) are cast to float32
    (exact) and bitcast, so every value comes back bit for bit, in its dtype. The client's buffer is
    this process's replicas' vectors, concatenated in replica order.
    """

    def __init__(self, summed: dict, rows: dict, num_rows: int):
        # `summed`: name -> structure of tf.TensorSpec; `rows`: name -> tf.TensorSpec of one row.
        self.summed, self.rows, self.num_rows = summed, rows, num_rows
        self.summed_size = sum(s.shape.num_elements() for s in tf.nest.flatten(summed))
        self.row_width = sum(s.shape.num_elements() for s in rows.values())
        self.size = self.summed_size + num_rows * self.row_width

    @classmethod
    def of(cls, out: dict, batch: dict, summed, rows) -> _EvalLayout:
        """The layout of `summed` and `rows` read from the eval core's `out` or the `batch`."""

        def field(name):
            if name in out:
                return out[name]
            if name in batch:
                return batch[name]
            raise KeyError(
                f"an evaluator reads {name!r}, which is neither an eval-step output {sorted(out)} nor a "
                f"feature of the eval batch {sorted(batch)}"
            )

        def spec(t, shape):
            d = t.dtype
            if not (d.is_bool or d.is_integer or d.is_floating) or d.size > 4:
                raise TypeError(f"{d.name} eval outputs cannot be packed into int32")
            return tf.TensorSpec(shape, d)

        n = int(batch["mask"].shape[0])
        for k in rows:
            if field(k).shape[:1] != [n]:
                raise ValueError(f"{k!r} is not a per-row field: shape {field(k).shape}")
        return cls(
            {k: tf.nest.map_structure(lambda t: spec(t, t.shape), field(k)) for k in summed},
            {k: spec(field(k), field(k).shape[1:]) for k in rows},
            n,
        )

    def pack(self, out: dict, batch: dict) -> tf.Tensor:
        """One replica's int32 vector (in replica context)."""

        def field(k):
            return out[k] if k in out else batch[k]

        parts = [
            tf.reshape(_to_int32(t), [-1]) for k in self.summed for t in tf.nest.flatten(field(k))
        ]
        if self.rows:
            block = [tf.reshape(_to_int32(field(k)), [self.num_rows, -1]) for k in self.rows]
            parts.append(tf.reshape(tf.concat(block, axis=1), [-1]))
        return tf.concat(parts, axis=0) if parts else tf.zeros([0], tf.int32)

    def unpack(self, buf: np.ndarray) -> dict:
        """The outputs in a fetched buffer: `summed` outputs as [replicas, ...] partial sums, `rows`
        fields as this process's rows in replica order."""
        if not self.size:
            return {}
        if buf.size % self.size:
            raise ValueError(f"an eval buffer of {buf.size} values for replicas of {self.size}")
        replicas = buf.size // self.size
        per = buf.reshape(replicas, self.size)
        out: dict = {}
        at = 0
        for k, struct in self.summed.items():
            leaves = []
            for s in tf.nest.flatten(struct):
                n = s.shape.num_elements()
                leaves.append(_from_int32(per[:, at : at + n], (replicas, *s.shape), s.dtype))
                at += n
            out[k] = tf.nest.pack_sequence_as(struct, leaves)
        block = per[:, at:].reshape(replicas * self.num_rows, self.row_width)
        at = 0
        for k, s in self.rows.items():
            n = s.shape.num_elements()
            out[k] = _from_int32(block[:, at : at + n], (len(block), *s.shape), s.dtype)
            at += n
        return out


def _to_int32(t: tf.Tensor) -> tf.Tensor:
    if t.dtype.is_floating:
        return tf.bitcast(tf.cast(t, tf.float32), tf.int32)
    return tf.cast(t, tf.int32)


def _from_int32(a: np.ndarray, shape: tuple, dtype: tf.DType) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if dtype.is_floating:
        a = a.view(np.float32)
    return a.reshape(shape).astype(dtype.as_numpy_dtype)


__all__ = ["Trainer", "curriculum_stages", "resolve_schedule"]
