"""The controller (Orbit's role): restore, then compiled training loops with actions between them.

`run(config, workdir, strategy, mode)` is what `launch.py` calls. It always resumes from the newest checkpoint
in `workdir`, so a preempted job is restarted with the same command. The pieces it drives:

* `trm_tf.trainer.Trainer`: every variable and the compiled loops (`train_loop(iterator, n)`, `evaluate`);
* `trm_tf.actions`: what happens between loops, each firing on boundary crossings (NaN guard, logs,
  checkpoints, periodic evaluation, profiler window, preemption);
* `trm_tf.evaluators`: the config's evaluators (accuracy, ARC voting), merged across worker processes through
  the strategy;
* `trm_tf.workdir.RunDir`: every file of the run directory, written during training through one
  background writer thread (`trm_tf.background`: logs, run_summary.json, the lock heartbeat), flushed before
  every checkpoint, on preemption and at the end;
* `trm_tf.goodput.Goodput`: where the wall time went (run_summary.json's `goodput`, TensorBoard, the last
  log line).

Between two compiled training loops the client fetches ONE vector from the devices (the loop's report) and
makes no synchronous storage call; checkpoints and evaluations are where it waits on purpose.
"""

from __future__ import annotations

import dataclasses
import os
import time
import types

import tensorflow as tf
from absl import logging

from trm_tf import checkpointing, distribute, evaluators
from trm_tf.actions import (
    LogMetrics,
    LoopEnd,
    NaNGuard,
    PeriodicEval,
    Preemption,
    ProfileWindow,
    SaveCheckpoint,
    crossed,
    steps_to_next_stop,
)
from trm_tf.background import BackgroundWriter
from trm_tf.best import BestCheckpoint
from trm_tf.checkpointing import CheckpointIO
from trm_tf.data import datasets, eval_input, input_pipeline, records
from trm_tf.goodput import Goodput
from trm_tf.models.flops import flops_per_example
from trm_tf.summaries import MetricWriter, hparams_of
from trm_tf.trainer import Trainer, resolve_forward_dtype, resolve_schedule
from trm_tf.workdir import HEARTBEAT_EVERY_S, RunDir


class NoCheckpointError(ValueError):
    """`--mode=eval` on a workdir without a checkpoint."""


# The profiler service of the TPU runtime on every TPU VM host.
TPU_PROFILER_PORT = 8466

__all__ = ["NoCheckpointError", "memory_check", "run"]


def memory_check(config, spec, strategy, on_tpu: bool | None = None) -> None:
    """Logs the per-chip memory estimate; on TPU refuses (MemoryBudgetError, one line naming the fixes)
    a config whose estimate exceeds `runtime.hbm_gib`, before minutes of XLA compilation end in OOM.
    `on_tpu` defaults to whether `strategy` is a TPUStrategy (tests pass True)."""
    from trm_tf import memory
    from trm_tf.memory_estimate import estimate

    replicas = strategy.num_replicas_in_sync
    per_chip = int(config.train.global_batch_size) // replicas
    est = estimate(config, spec.seq_len, spec.num_puzzle_identifiers, per_chip)
    if on_tpu is None:
        on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    logging.info(
        "Memory estimate: %.2f GiB per replica at per-replica batch %d%s",
        est.total / 2**30,
        per_chip,
        f" (HBM {float(config.runtime.hbm_gib):g} GiB)" if on_tpu else "",
    )
    if on_tpu and config.runtime.memory_check:
        memory.check_fits(est, float(config.runtime.hbm_gib) * 2**30, per_chip, replicas)


def profiler_addresses(strategy, tpu: str, port: int) -> list[str]:
    """grpc:// addresses of every host's profiler service, or [] to trace this process only."""
    if isinstance(strategy, tf.distribute.TPUStrategy) and distribute.drives_remote_hosts(tpu):
        spec = strategy.cluster_resolver.cluster_spec().as_dict()
        hosts = [a.rpartition(":")[0] for job in spec.values() for a in job]
        return [f"grpc://{h}:{TPU_PROFILER_PORT}" for h in hosts]
    workers = distribute.profiler_services(port)
    return workers if len(workers) > 1 else []


class Evaluation:
    """One evaluation of the current (EMA or raw) weights: the eval stream (built once per kind), the
    evaluators of the config (`eval.evaluators`), the log line and the run directory's eval_results.json.

    It calls only the evaluator interface (`trm_tf.evaluators.base`): before the run's first evaluation
    each evaluator restores the state earlier evaluations stored in the run directory up to `start_step`
    (the restored checkpoint); an evaluation of the run's weights then adds `record(step, rundir)`'s
    metrics (e.g. ARC's pooled pass@K) and, on the writer, the evaluator's files (`write`). A partial
    (periodic) evaluation reads the first `eval.subset_size` rows, or, when an evaluator must see whole
    tasks (`whole_tasks`), every row of the evaluators' `periodic_tasks` (ARC: `eval.arc_subset_tasks`
    tasks seeded by `seed`), or, without such a subset (or with `eval.subset_size = -1`, or at least the
    test split's rows), the whole test split (it is then full, and recorded as such).
    """

    def __init__(
        self,
        config,
        spec,
        strategy,
        trainer,
        rundir: RunDir,
        writer,
        options,
        start_step=0,
        goodput: Goodput | None = None,
    ):
        self.config, self.spec, self.strategy, self.trainer = config, spec, strategy, trainer
        self.rundir, self.writer, self.options = rundir, writer, options
        self.goodput = goodput
        self.evaluators = evaluators.from_config(config, spec, trainer.eval_halt_max_steps)
        self._streams: dict[bool, tuple] = {}
        self.periodic_tasks = evaluators.periodic_tasks(self.evaluators)
        self.whole_tasks = self.periodic_tasks is not None or any(
            e.whole_tasks for e in self.evaluators
        )
        for e in self.evaluators:
            e.restore(rundir, start_step)

    def _stream(self, full: bool):
        if full not in self._streams:
            self._streams[full] = eval_input.distribute_eval(
                self.strategy,
                self.spec,
                self.config.eval.global_batch_size,
                -1 if full or self.whole_tasks else int(self.config.eval.subset_size),
                extra_features=evaluators.device_features(self.evaluators),
                task_names=evaluators.task_names(self.evaluators),
                options=self.options,
                tasks=None if full else self.periodic_tasks,
            )
        return self._streams[full]

    def __call__(self, step: int, full: bool, use_ema: bool | None = None, tag: str = "") -> dict:
        if self.goodput is None:
            return self._evaluate(step, full, use_ema, tag)
        with self.goodput.phase("evaluation"):
            return self._evaluate(step, full, use_ema, tag)

    def _evaluate(self, step: int, full: bool, use_ema: bool | None, tag: str) -> dict:
        # No subset (every task, or eval.subset_size = -1 or at least the test split's rows: every row):
        # the evaluation is full.
        size = int(self.config.eval.subset_size)
        full = full or (
            self.periodic_tasks is None
            if self.whole_tasks
            else size < 0 or size >= self.spec.num_test_examples
        )
        dist, steps = self._stream(full)
        for e in self.evaluators:
            e.select_tasks(None if full else self.periodic_tasks)
        use_ema = self.config.eval.use_ema if use_ema is None else use_ema
        t0 = time.perf_counter()
        metrics = self.trainer.evaluate(dist, steps, use_ema=use_ema, evaluators=self.evaluators)
        if not tag:  # the checkpoint average is not one of the run's evaluations
            for e in self.evaluators:
                metrics.update(e.record(step, self.rundir))
            if self.rundir.writer:
                for e in self.evaluators:
                    e.write(step, self.rundir)
        metrics["eval_seconds"] = time.perf_counter() - t0
        examples = metrics.get("num_examples")  # the accuracy evaluator's
        parts = [e.log_line(metrics) for e in reversed(self.evaluators)]  # the headline first
        logging.info(
            "eval @ step %d (%s, %s examples): %s",
            step,
            "full" if full else "subset",
            "?" if examples is None else int(examples),
            "; ".join(p for p in parts if p),
        )
        self.writer.write("eval" + tag, step, metrics)
        weights = tag.strip("_") or ("ema" if use_ema and self.trainer.ema is not None else "raw")
        self.rundir.add_eval(
            {"step": step, "full": full, "weights": weights, **metrics}, tag=weights if tag else ""
        )
        return metrics

    def checkpoint_average(self, ckpt: CheckpointIO, k: int, step: int) -> dict:
        """Evaluates the mean weights of the last k checkpoints (E4.4), next to the EMA evaluation."""
        model = self.trainer.model
        paths = list(ckpt.manager.checkpoints[-k:])
        averaged = checkpointing.average_checkpoint_weights(model, paths)
        live = [v.numpy() for v in model.trainable_variables]
        for v, w in zip(model.trainable_variables, averaged):
            v.assign(w)
        try:
            logging.info("Evaluating the average of the last %d checkpoints: %s", len(paths), paths)
            return self(step, full=True, use_ema=False, tag="_average")
        finally:
            for v, w in zip(model.trainable_variables, live):
                v.assign(w)


def _summary_fields(config, trainer, strategy, spec, start_step, total_steps) -> dict:
    m = trainer.model
    return {
        "experiment_id": config.experiment_id,
        "status": "running",
        "step": start_step,
        "total_steps": total_steps,
        "num_params": int(m.num_params()),
        "flops_per_example_train": float(flops_per_example(m, train=True)),
        "flops_per_example_eval": float(
            flops_per_example(m, train=False) * trainer.eval_halt_max_steps
        ),
        "num_replicas": strategy.num_replicas_in_sync,
        "device_kind": distribute.device_kind(),
        "xla": bool(trainer.jit_compile),
        "matmul_precision": getattr(trainer, "matmul_precision", "default"),
        "forward_dtype": config.model.forward_dtype,
        # On CPU: what runs bfloat16 matmuls ("amx", "avx512_bf16", "none"; model.forward_dtype=auto
        # picks bfloat16 with "amx"), and whether XLA fuses the element-wise ops of a step without XLA.
        "cpu_bf16_matrix_unit": trainer.cpu_bf16_matrix_unit,
        "xla_fusion_clusters": bool(trainer.fusion_clusters),
        "dataset": spec.name,
    }


def build(config, strategy, write_cache: bool = False, remote_hosts: bool | None = None):
    """The run's dataset spec, schedule and Trainer: (spec, total_steps, eval_every, trainer).

    In this order, so that a config that cannot fit refuses before anything touches the data: the
    dataset's metadata (one `tfds.builder`), the memory check (MemoryBudgetError; for a dataset still to
    be built, from its builder: `datasets.dataset_shapes`), then the build if the dataset is missing and allowed (it
    writes the decoded cache), then, with `write_cache` (the chief of a training run), the train split's
    decoded cache (`cache.require_cache`): a launch that drives remote TPU hosts (`remote_hosts`, by
    default read from `strategy`) refuses without one (DecodedCacheMissingError, exit 3), one machine
    writes it."""
    from trm_tf.data import cache

    resolve_forward_dtype(config, strategy)  # "auto" -> a dtype before the memory check reads it
    d = config.data
    name = f"{d.name}/{d.config}"
    try:
        spec = datasets.load_spec(name, d.data_dir)
    except datasets.DatasetMissingError:
        if not d.build_if_missing:
            raise
        spec = None
    if spec is not None:
        memory_check(config, spec, strategy)
    else:
        try:
            seq_len, _, ids = datasets.dataset_shapes(name)
        except KeyError:  # no figures for this dataset: checked once it is built
            seq_len = None
        if seq_len is not None:
            shapes = types.SimpleNamespace(seq_len=seq_len, num_puzzle_identifiers=ids)
            memory_check(config, shapes, strategy)
        spec = datasets.build_dataset(name, d.data_dir, d.manual_dir)
        if seq_len is None:
            memory_check(config, spec, strategy)
    total_steps, eval_every = resolve_schedule(config, spec)
    if write_cache:
        if remote_hosts is None:
            remote_hosts = _on_remote_hosts(strategy)
        cache.require_cache(spec, remote_hosts)
    return spec, total_steps, eval_every, Trainer(config, strategy, spec, total_steps)


def _on_remote_hosts(strategy) -> bool:
    """Whether `strategy` runs on TPU hosts other than this process (a pod client after
    `connect_to_cluster`: its devices live on job "worker", a single TPU VM's on "localhost")."""
    if not isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    return any(not d.startswith("/job:localhost") for d in strategy.extended.worker_devices)


def run(
    config,
    workdir: str,
    strategy,
    mode: str = "train_and_eval",
    tpu: str = "",
    rundir=None,
    checkpoint: str = "last",
):
    """Trains and/or evaluates `config` in `workdir`; returns the last evaluation's metrics.

    `tpu` is launch.py's `--tpu` (it tells whether remote hosts' profiler services must be traced);
    `rundir` the launcher's RunDir (which holds the workdir lock), else one is made here; `checkpoint`
    ("last" or "best", `--mode=eval` only) which checkpoint an evaluation restores. A dataset file
    that turns out unreadable mid-run stops it with DatasetCorruptError naming the file.
    """
    if checkpoint not in ("last", "best") or (checkpoint == "best" and mode != "eval"):
        raise ValueError(f"checkpoint={checkpoint!r}: 'last', or 'best' with --mode=eval")
    try:
        return _run(config, workdir, strategy, mode, tpu, rundir, checkpoint)
    except (tf.errors.DataLossError, tf.errors.FailedPreconditionError) as e:
        if not datasets.is_read_error(e):
            raise
        d = config.data
        spec = datasets.load_spec(f"{d.name}/{d.config}", d.data_dir)
        raise datasets.corrupt_error(spec, e) from e


def _eval_pending(rundir, start_step: int, total_steps: int, eval_every: int) -> bool:
    """Whether the process that saved the restored checkpoint stopped before its periodic evaluation."""
    return (
        0 < start_step < total_steps
        and start_step % eval_every == 0
        and start_step not in rundir.evaluated_steps()
    )


def _log_start(config, spec, trainer, total_steps: int, eval_every: int, start_step: int) -> None:
    """One line: what runs, how big, from which step, with or without XLA."""
    logging.info(
        "%s: %s, %d params, %d replicas x %d examples, %d steps (eval every %d), start at step %d, "
        "XLA %s (runtime.jit_compile=%s), %s forward",
        config.experiment_id,
        spec.name,
        int(trainer.model.num_params()),
        trainer.num_replicas,
        trainer.per_replica_batch,
        total_steps,
        eval_every,
        start_step,
        "on" if trainer.jit_compile else "off",
        config.runtime.jit_compile,
        config.model.forward_dtype,
    )


def _start_record(
    config, trainer, strategy, spec, rundir, start_step, total_steps
) -> tuple[float, dict]:
    """Drops log records after the restored step, records the run in run_summary.json; returns the wall
    time the run had already spent before this process and the summary as this process found it."""
    removed = rundir.truncate_after(start_step)
    if removed:
        logging.info(
            "Dropped %d log records of steps after the restored step %d", removed, start_step
        )
    previous = rundir.summary()
    wall_before = float(previous.get("wall_time_s", 0.0))
    rundir.update_summary(
        **_summary_fields(config, trainer, strategy, spec, start_step, total_steps)
    )
    return wall_before, previous


def _run(
    config,
    workdir: str,
    strategy: tf.distribute.Strategy,
    mode: str = "train_and_eval",
    tpu: str = "",
    rundir: RunDir | None = None,
    checkpoint: str = "last",
) -> dict:
    """Trains and/or evaluates `config` in `workdir`; returns the last evaluation's metrics.

    `tpu` is launch.py's `--tpu` (it tells whether remote hosts' profiler services must be traced);
    `rundir` the launcher's RunDir (which holds the workdir lock), else one is made here.
    """
    chief = distribute.is_chief(strategy)
    rundir = rundir or RunDir(workdir, writer=chief)
    spec, total_steps, eval_every, trainer = build(
        config, strategy, write_cache=chief and mode != "eval"
    )
    # The chief's storage writes go to one thread from here on (the lock heartbeat with them).
    background = BackgroundWriter(
        heartbeat=rundir.heartbeat, heartbeat_every_s=HEARTBEAT_EVERY_S, threaded=chief
    )
    rundir.background = background
    try:
        result = _run_with_writer(
            config,
            workdir,
            strategy,
            mode,
            tpu,
            rundir,
            spec,
            total_steps,
            eval_every,
            trainer,
            checkpoint,
        )
    except BaseException:
        try:  # what was queued before the failure is still written; a failed write is only logged
            background.close()
        except Exception as e:  # noqa: BLE001
            logging.warning("%s", e)
        raise
    finally:
        rundir.background = None
    background.close()  # joins the thread; raises if a write failed
    return result


def _run_with_writer(
    config, workdir, strategy, mode, tpu, rundir, spec, total_steps, eval_every, trainer, checkpoint
) -> dict:
    """`_run` once the background writer exists: restore, record, train, evaluate, account the goodput."""
    chief = distribute.is_chief(strategy)
    background = rundir.background
    writer = MetricWriter(workdir, enabled=chief, background=background)
    keep = max(int(config.train.max_checkpoints), int(config.eval.average_last_k))
    ckpt = CheckpointIO(trainer, workdir, keep, chief, distribute.worker_index(strategy))
    start_step = ckpt.restore_best() if checkpoint == "best" else ckpt.restore_latest()
    trainer.sync_step()  # the host's step: read once, after the restore
    if mode == "eval" and start_step == 0:
        raise NoCheckpointError(
            f"--mode=eval needs a checkpoint and {ckpt.real_dir} has none (a typo in --workdir?)"
        )
    wall_before, previous = _start_record(
        config, trainer, strategy, spec, rundir, start_step, total_steps
    )
    goodput = Goodput(previous) if mode != "eval" else None
    if mode != "eval":  # the run's row in TensorBoard's HParams tab (one session per workdir)
        writer.write_hparams(hparams_of(config), os.path.basename(workdir.rstrip("/")), time.time())
    _log_start(config, spec, trainer, total_steps, eval_every, start_step)
    options = records.input_options(config.runtime.input_pipelines)
    evaluate = Evaluation(
        config, spec, strategy, trainer, rundir, writer, options, start_step, goodput
    )
    if mode == "eval":
        if checkpoint == "best":  # kept apart from the run's history, under "best_checkpoint"
            return evaluate(start_step, full=True, tag="_best")
        return evaluate(start_step, full=True)
    best = BestCheckpoint(config, ckpt, rundir, strategy, previous)
    if (
        previous.get("stop_reason") == "early_stop"
    ):  # a relaunch of an early-stopped run trains no more
        logging.info("The run stopped early at step %d; nothing left to train", start_step)
        total_steps = start_step

    def tracked(step: int, full: bool) -> dict:
        metrics = evaluate(step, full=full)
        best(step, metrics, full=full)
        return metrics

    log = LogMetrics(
        int(config.train.log_every_steps),
        trainer,
        writer,
        rundir,
        total_steps,
        wall_before,
        goodput,
    )
    actions = [
        NaNGuard(ckpt.latest),
        log,
        SaveCheckpoint(int(config.train.checkpoint_every_steps), ckpt, writer.flush, goodput),
    ]
    if mode == "train_and_eval":
        actions.append(PeriodicEval(eval_every, lambda s: tracked(s, full=False)))
    last_eval: dict = {}
    try:
        if mode == "train_and_eval" and _eval_pending(rundir, start_step, total_steps, eval_every):
            last_eval = tracked(start_step, full=False)
        step = _train_loops(
            config,
            strategy,
            trainer,
            spec,
            start_step,
            total_steps,
            tpu,
            options,
            actions,
            log,
            goodput,
            best.stop_requested,
        )
        if step is not None and (mode == "train_and_eval" or step == start_step):
            last_eval = tracked(step, full=bool(config.eval.final_full))
            k = int(config.eval.average_last_k)
            if k > 0:
                last_eval["average_last_k"] = evaluate.checkpoint_average(ckpt, k, step)
    except BaseException:
        rundir.update_summary(goodput=goodput.record())  # this attempt's time still counts
        raise
    record = goodput.record()
    done = {"status": "preempted"} if step is None else {"status": "finished", "step": step}
    if step is not None and step < total_steps:
        done["stop_reason"] = "early_stop"
    rundir.update_summary(**done, wall_time_s=log.wall_time(), goodput=record)
    writer.write("train", trainer.host_step, Goodput.scalars(record), jsonl=False)
    if step is not None and writer.enabled:  # finished: the HParams tab's final/best metrics
        writer.write_outcome(step, rundir.eval_results())
    writer.close()
    logging.info("step %d: %s", trainer.host_step, Goodput.line(record))
    return last_eval


def _train_loops(
    config,
    strategy,
    trainer,
    spec,
    start_step,
    total_steps,
    tpu,
    options,
    actions,
    log,
    goodput: Goodput,
    early_stop=lambda: False,
):
    """The loop: a schedule says how many steps the next compiled loop runs, the trainer runs them, ONE
    fetch brings the loop's report to the host, the actions fire on it. Returns the final step (before
    `total_steps` when `early_stop()` turned true after an evaluation; its checkpoint saved), or None
    after a preemption stop (checkpoint saved)."""
    t = config.train
    port = int(t.profiler_port)
    chief = distribute.is_chief(strategy)
    if port > 0 and (chief or distribute.profiler_services(port)):
        own = distribute.own_profiler_port(port)
        tf.profiler.experimental.server.start(own)
        logging.info("Profiler server on port %d (capture with scripts/capture_profile.sh)", own)
    workdir = log.rundir.path
    profile = ProfileWindow(
        int(t.profile_start_step) if int(t.profile_start_step) >= start_step else -1,
        int(t.profile_num_steps),
        workdir,
        profiler_addresses(strategy, tpu, port),
        enabled=chief,
    )
    preemption = Preemption(distribute.num_workers(strategy))
    dist = input_pipeline.distribute_train(
        strategy,
        spec,
        trainer.global_batch,
        config.seed,
        start_step,
        config.data.prefetch,
        config.data.host_sharding,
        options=options,
    )
    iterator = iter(dist)
    cadences = [a.every for a in actions if hasattr(a, "every")]
    step, spl = start_step, int(t.steps_per_loop)
    trainer.reset_metrics()
    while step < total_steps:
        stage_end = step + trainer.steps_to_stage_change(step)
        goodput.loop_begin()
        if profile.due(step):  # the window (capped at the stage end); cadence points may be crossed
            n = min(profile.num_steps + 1, total_steps - step, stage_end - step)
            profile.run(trainer, iterator, step, n, log.steps_per_s())
            # One compiled function of its own: its excess over the steady step rate (the single step's
            # build, the tracing) is charged to compilation.
            function = ("profile", trainer.stage_at(step))
        else:
            n = steps_to_next_stop(step, total_steps, spl, cadences, (profile.start, stage_end))
            with tf.profiler.experimental.Trace("train", step_num=step + n, _r=1):  # a step marker
                trainer.train_loop(iterator, n)
            function = ("train", trainer.stage_at(step))
        report = trainer.report(preemption.received)  # the one fetch of the loop
        goodput.loop_end(function, n)
        stop = preemption.requested(report)
        end = LoopEnd(step, step + n, step + n >= total_steps, stop, report)
        step = end.after
        for action in actions:
            action(end)
        if end.stop:
            logging.warning("SIGTERM received: saved checkpoint at step %d, exiting.", step)
            profile.join()
            return None
        if not end.last and early_stop():
            for saver in (a for a in actions if isinstance(a, SaveCheckpoint)):
                if not crossed(end.before, end.after, saver.every):  # not saved at this step yet
                    saver(dataclasses.replace(end, last=True))
            logging.info(
                "Early stop at step %d: %d evaluations without a new best (train.early_stop_evals)",
                step,
                int(config.train.early_stop_evals),
            )
            break
    profile.join()
    return step
