"""The outer training loop (Orbit's Controller role): restore, train loops, logs, evals, checkpoints.

`run(config, workdir, strategy, mode)` is what `launch.py` calls. It always resumes from the newest
checkpoint in `workdir`, so a preempted job is restarted with the same command.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from trm_tf import checkpointing, distribute, summaries
from trm_tf.checkpointing import CheckpointIO
from trm_tf.data import datasets, input_pipeline
from trm_tf.evaluators import arc as arc_eval
from trm_tf.trainer import Trainer, eta_string, resolve_schedule


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


def _progress(step: int, total: int, metrics: dict, eta: str) -> None:
    """A one-line progress bar on interactive terminals (logs remain the record on pods)."""
    if not sys.stderr.isatty():
        return
    width = 30
    done = int(width * step / max(total, 1))
    sys.stderr.write(
        f"\r[{'=' * done}{'.' * (width - done)}] {step}/{total} "
        f"loss {metrics.get('loss', float('nan')):.4f} exact {metrics.get('exact_accuracy', 0):.3f} "
        f"ETA {eta}   "
    )
    sys.stderr.flush()


class _SigtermFlag:
    """Remembers a SIGTERM (TPU VM preemption) so the loop can save a checkpoint and exit cleanly."""

    def __init__(self):
        self.received = False
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread (tests)
            pass

    def _handle(self, signum, frame):
        del signum, frame
        self.received = True


# Integer features the ARC voting evaluator needs, carried through the eval step next to the predictions
# (each row brings its own task, transform and colour map, so any host and replica order scores right);
# task names are resolved on the client from the sorted names of the ground truth.
ARC_DEVICE_FEATURES = ("task_id", "test_index", "transform_id", "color_map")


def _arc_feeder(arc, task_names: list[str]):
    """Turns one replica's eval outputs (numpy) into an ARCEvaluator.update batch."""
    names = np.asarray(list(task_names) + [""], dtype=object)  # task_id -1 (padding) -> ""

    def feed(out: dict) -> None:
        arc.update(
            {
                "task_name": names[np.asarray(out["task_id"]).reshape(-1)],
                "test_index": out["test_index"],
                "transform_id": out["transform_id"],
                "color_map": out["color_map"],
                "inputs": out["inputs"],
                "preds": out["preds"],
                "q_halt": out["q_halt"],
                "mask": out["mask"],
            }
        )

    return feed


def _arc_results(arc, strategy, workdir, step, truth, chief, worker, write=True) -> dict:
    """Merges the hosts' votes (multi-worker: through files in the workdir), scores pass@K on the
    chief and writes the Kaggle submission."""
    if getattr(strategy.extended, "_num_workers", 1) > 1:
        vote_dir = os.path.join(workdir, "arc_votes", f"step_{step}")
        tf.io.gfile.makedirs(vote_dir)
        summaries.write_json(os.path.join(vote_dir, f"host{worker}.json"), arc.state())
        if not chief:
            return {}
        n = strategy.extended._num_workers
        deadline = time.time() + 600
        while len(tf.io.gfile.glob(os.path.join(vote_dir, "host*.json"))) < n:
            if time.time() > deadline:
                raise TimeoutError(f"ARC votes of {n} hosts not all in {vote_dir}")
            time.sleep(1)
        arc.reset()
        arc.merge(summaries.read_json(p) for p in tf.io.gfile.glob(f"{vote_dir}/host*.json"))
    result = arc.result(truth)
    if chief and write:
        arc.write_submission(os.path.join(workdir, f"submission_step{step}.json"), truth)
    return result


def crossed(before: int, after: int, every: int) -> bool:
    """True when a multiple of `every` lies in (before, after]: cadence by boundary crossing, so that a
    loop of any length (a profiler window, a curriculum stage end, a resume from an off-grid step) can never
    take logging, checkpoints or evaluations off their grid."""
    return every > 0 and after // every > before // every


def steps_to_next_stop(step: int, total: int, steps_per_loop: int, cadences, stops=()) -> int:
    """Length of the next compiled loop from `step`: at most `steps_per_loop`, ending on the next multiple
    of any cadence in `cadences` and at the next step in `stops` (profiler start, curriculum stage)."""
    n = min(steps_per_loop, total - step)
    for every in cadences:
        if every > 0:
            n = min(n, every - step % every)
    for s in stops:
        if s > step:
            n = min(n, s - step)
    return max(n, 1)


class _ProfilerWindow:
    """Traces one window of training steps into `logdir/plugins/profile`.

    With `addresses` (the profiler services of every host: the TPU runtime's port 8466 on each TPU VM of a
    pod, or each worker's own server under MultiWorkerMirrored) the client asks every host for a trace
    (`tf.profiler.experimental.client.trace`, in a thread, for `duration_ms`); a pod's TPU lanes live only
    in those services. Without, it traces this process (one host: the client is the host).
    """

    def __init__(self, logdir: str, addresses: list[str]):
        self.logdir, self.addresses = logdir, addresses
        self._thread = None
        self._error: Exception | None = None

    def start(self, duration_ms: int) -> None:
        if not self.addresses:
            tf.profiler.experimental.start(self.logdir)
            return

        def trace():
            try:
                tf.profiler.experimental.client.trace(
                    ",".join(self.addresses), self.logdir, int(duration_ms)
                )
            except Exception as e:  # a missing trace must not stop training
                self._error = e

        self._thread = threading.Thread(target=trace, daemon=True)
        self._thread.start()
        time.sleep(1.0)  # the services start tracing about a second after the request

    def stop(self) -> None:
        if not self.addresses:
            tf.profiler.experimental.stop()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                logging.warning("Profiler trace of the hosts failed: %s", self._error)


def profiler_addresses(strategy, tpu: str, port: int) -> list[str]:
    """grpc:// addresses of every host's profiler service, or [] to trace this process only."""
    if isinstance(strategy, tf.distribute.TPUStrategy) and distribute.drives_remote_hosts(tpu):
        spec = strategy.cluster_resolver.cluster_spec().as_dict()
        hosts = [a.rpartition(":")[0] for job in spec.values() for a in job]
        return [f"grpc://{h}:{TPU_PROFILER_PORT}" for h in hosts]
    workers = distribute.profiler_services(port)
    return workers if len(workers) > 1 else []


# The profiler service of the TPU runtime on every TPU VM host.
TPU_PROFILER_PORT = 8466


def eval_checkpoint_average(trainer, ckpt: CheckpointIO, k: int, do_eval, step: int) -> dict:
    """Evaluates the mean weights of the last k checkpoints (E4.4), next to the EMA evaluation."""
    paths = list(ckpt.manager.checkpoints[-k:])
    averaged = checkpointing.average_checkpoint_weights(trainer.model, paths)
    live = [v.numpy() for v in trainer.model.trainable_variables]
    for v, w in zip(trainer.model.trainable_variables, averaged):
        v.assign(w)
    try:
        logging.info("Evaluating the average of the last %d checkpoints: %s", len(paths), paths)
        return do_eval(step, full=True, use_ema=False, tag="_average")
    finally:
        for v, w in zip(trainer.model.trainable_variables, live):
            v.assign(w)


def _any_worker(strategy, flag: bool) -> bool:
    """True when `flag` is set on any worker process (SIGTERM reaches each worker of a cluster at its own
    moment; they must all stop after the same step). One process drives a TPU pod: no exchange needed."""
    if getattr(strategy.extended, "_num_workers", 1) <= 1:
        return flag
    value = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(1.0 if flag else 0.0)
    )
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)) > 0


def memory_check(config, spec, strategy, on_tpu: bool | None = None) -> None:
    """Logs the per-chip memory estimate; on TPU refuses (MemoryBudgetError, one line naming the fixes)
    a config whose estimate exceeds `runtime.hbm_gib`, before minutes of XLA compilation end in OOM.
    `on_tpu` defaults to whether `strategy` is a TPUStrategy (tests pass True)."""
    from trm_tf import memory

    replicas = strategy.num_replicas_in_sync
    per_chip = int(config.train.global_batch_size) // replicas
    est = memory.estimate(config, spec.seq_len, spec.num_puzzle_identifiers, per_chip)
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


def run(
    config,
    workdir: str,
    strategy: tf.distribute.Strategy,
    mode: str = "train_and_eval",
    tpu: str = "",
) -> dict:
    """Trains and/or evaluates `config` in `workdir`; returns the last evaluation's metrics.

    `tpu` is launch.py's `--tpu` (it tells whether remote hosts' profiler services must be traced).
    """
    chief = distribute.is_chief(strategy)
    worker = distribute.worker_index(strategy)
    data = config.data
    name = f"{data.name}/{data.config}"
    spec = datasets.ensure_dataset(name, data.data_dir, data.build_if_missing, data.manual_dir)
    total_steps, eval_every = resolve_schedule(config, spec)
    spl = int(config.train.steps_per_loop)
    log_every = int(config.train.log_every_steps)
    ckpt_every = int(config.train.checkpoint_every_steps)
    input_options = input_pipeline.input_options(config.runtime.input_pipelines)

    memory_check(config, spec, strategy)
    trainer = Trainer(config, strategy, spec, total_steps)
    writer = summaries.MetricWriter(workdir, enabled=chief)
    keep = max(int(config.train.max_checkpoints), int(config.eval.average_last_k))
    ckpt = CheckpointIO(trainer, workdir, keep, chief, worker)
    start_step = ckpt.restore_latest()
    m = trainer.model
    flops_train = m.flops_per_example(train=True)
    flops_eval = m.flops_per_example(train=False) * trainer.halt_max_steps
    summary_path = os.path.join(workdir, "run_summary.json")
    run_summary = {
        "experiment_id": config.experiment_id,
        "status": "running",
        "step": start_step,
        "total_steps": total_steps,
        "num_params": int(m.num_params()),
        "flops_per_example_train": float(flops_train),
        "flops_per_example_eval": float(flops_eval),
        "num_replicas": strategy.num_replicas_in_sync,
        "device_kind": distribute.device_kind(),
        "xla": bool(trainer.jit_compile),
        "matmul_precision": getattr(trainer, "matmul_precision", "default"),
        "forward_dtype": config.model.forward_dtype,
        "dataset": name,
        "wall_time_s": 0.0,
        "examples_per_s": 0.0,
    }
    logging.info(
        "%s: %s, %d params, %d replicas x %d examples, %d steps (eval every %d), start at step %d, "
        "XLA %s (runtime.jit_compile=%s), %s forward",
        config.experiment_id,
        name,
        run_summary["num_params"],
        trainer.num_replicas,
        trainer.per_replica_batch,
        total_steps,
        eval_every,
        start_step,
        "on" if trainer.jit_compile else "off",
        config.runtime.jit_compile,
        config.model.forward_dtype,
    )
    results_path = os.path.join(workdir, "eval_results.json")
    results = summaries.read_json(results_path, {"latest": {}, "history": []})
    arc_truth = None
    if config.eval.evaluator == "arc":
        arc_truth = arc_eval.load_ground_truth(
            tfds.builder(spec.name, data_dir=spec.data_dir).data_dir
        )
    arc_task_names = sorted(arc_truth) if arc_truth is not None else None

    def do_eval(step: int, full: bool, use_ema: bool | None = None, tag: str = "") -> dict:
        subset = -1 if full else int(config.eval.subset_size)
        use_ema = config.eval.use_ema if use_ema is None else use_ema
        arc = arc_eval.ARCEvaluator() if arc_truth is not None else None
        dist, steps = input_pipeline.distribute_eval(
            strategy,
            spec,
            config.eval.global_batch_size,
            subset,
            extra_features=ARC_DEVICE_FEATURES if arc is not None else (),
            task_names=arc_task_names,
            options=input_options,
        )
        on_batch = _arc_feeder(arc, arc_task_names) if arc is not None else None
        t0 = time.perf_counter()
        metrics = trainer.evaluate(dist, steps, use_ema=use_ema, on_batch=on_batch)
        if arc is not None:
            metrics.update(
                _arc_results(arc, strategy, workdir, step, arc_truth, chief, worker, write=not tag)
            )
        metrics["eval_seconds"] = time.perf_counter() - t0
        logging.info(
            "eval @ step %d (%s, %d examples): exact_accuracy %.4f, accuracy %.4f, q_halt_accuracy %.4f",
            step,
            "full" if full else "subset",
            int(metrics["num_examples"]),
            metrics.get("exact_accuracy", float("nan")),
            metrics.get("accuracy", float("nan")),
            metrics.get("q_halt_accuracy", float("nan")),
        )
        writer.write("eval" + tag, step, metrics)
        weights = tag.strip("_") or ("ema" if use_ema and trainer.ema is not None else "raw")
        entry = {"step": step, "full": full, "weights": weights, **metrics}
        if tag:  # e.g. the checkpoint average: kept apart from the main evaluation history
            results[weights] = entry
        else:
            results["history"].append(entry)
            results["latest"] = entry
        if chief:
            summaries.write_json(results_path, results)
        return metrics

    if mode == "eval":
        return do_eval(start_step, full=True)

    port = int(config.train.profiler_port)
    if port > 0 and (chief or distribute.profiler_services(port)):
        own = distribute.own_profiler_port(port)
        tf.profiler.experimental.server.start(own)
        logging.info("Profiler server on port %d (capture with scripts/capture_profile.sh)", own)
    profiler = _ProfilerWindow(workdir, profiler_addresses(strategy, tpu, port)) if chief else None
    sigterm = _SigtermFlag()
    dist_train = input_pipeline.distribute_train(
        strategy,
        spec,
        trainer.global_batch,
        config.seed,
        start_step,
        config.data.prefetch,
        config.data.host_sharding,
        options=input_options,
    )
    iterator = iter(dist_train)
    step = start_step
    t_start = time.perf_counter()
    wall_before = float(summaries.read_json(summary_path, {}).get("wall_time_s", 0.0))
    last_eval: dict = {}
    window_steps, window_t0 = 0, time.perf_counter()
    trainer.reset_metrics()
    prof_start = int(config.train.profile_start_step)
    if (
        prof_start < start_step
    ):  # a window before the restored step was traced already (or never set)
        prof_start = -1
    prof_steps = max(1, int(config.train.profile_num_steps))
    cadences = [log_every, ckpt_every] + ([eval_every] if mode == "train_and_eval" else [])
    evaluated = {int(h.get("step", -1)) for h in results["history"]}
    if (
        mode == "train_and_eval"
        and 0 < start_step < total_steps
        and start_step % eval_every == 0
        and start_step not in evaluated
    ):  # the process that saved this checkpoint stopped before its evaluation: run it now
        last_eval = do_eval(start_step, full=False)
    while step < total_steps:
        stage_end = step + trainer.steps_to_stage_change(step)
        profiling = prof_start >= 0 and step >= prof_start
        if (
            profiling
        ):  # one loop of the window's steps (capped at the stage end); cadence may be crossed
            n = min(prof_steps, total_steps - step, stage_end - step)
            if chief:
                rate = window_steps / max(time.perf_counter() - window_t0, 1e-9)
                est_ms = 1000.0 * n / rate if window_steps else 10_000.0
                profiler.start(duration_ms=int(min(max(2.0 * est_ms + 2000.0, 3000.0), 120_000)))
        else:
            n = steps_to_next_stop(step, total_steps, spl, cadences, (prof_start, stage_end))
        trainer.train_loop(iterator, n)
        before, step = step, step + n
        window_steps += n
        if profiling:
            prof_start = -1
            if chief:
                profiler.stop()
                logging.info(
                    "Profiler trace of steps %d-%d written to %s/plugins/profile",
                    before,
                    step,
                    workdir,
                )
        last = step >= total_steps
        stop = _any_worker(strategy, sigterm.received)
        if crossed(before, step, log_every) or last or stop:
            metrics = trainer.read_metrics(window_steps)
            if not math.isfinite(metrics["loss"]):
                raise NonFiniteLossError(
                    f"Non-finite loss in steps {step - window_steps + 1}-{step}; stopping. The last good "
                    f"checkpoint ({ckpt.latest()}) is kept."
                )
            dt = time.perf_counter() - window_t0
            metrics["steps_per_s"] = window_steps / dt
            metrics["examples_per_s"] = window_steps * trainer.global_batch / dt
            eta = eta_string((total_steps - step) / max(metrics["steps_per_s"], 1e-9))
            logging.info(
                "step %d/%d | %.1f ex/s | loss %.4f | accuracy %.4f | exact %.4f | q_halt_acc %.3f | "
                "steps %.2f | lr %.2e | ETA %s",
                step,
                total_steps,
                metrics["examples_per_s"],
                metrics["loss"],
                metrics["accuracy"],
                metrics["exact_accuracy"],
                metrics["q_halt_accuracy"],
                metrics["steps"],
                metrics["lr"],
                eta,
            )
            _progress(step, total_steps, metrics, eta)
            writer.write("train", step, metrics)
            run_summary.update(
                step=step,
                examples_per_s=metrics["examples_per_s"],
                wall_time_s=wall_before + time.perf_counter() - t_start,
            )
            if chief:
                summaries.write_json(summary_path, run_summary)
            trainer.reset_metrics()
            window_steps, window_t0 = 0, time.perf_counter()
        if crossed(before, step, ckpt_every) or last or stop:
            ckpt.save(step)
        if stop:
            logging.warning("SIGTERM received: saved checkpoint at step %d, exiting.", step)
            run_summary.update(status="preempted")
            if chief:
                summaries.write_json(summary_path, run_summary)
            if profiler is not None:
                profiler.join()
            writer.close()
            return last_eval
        if mode == "train_and_eval" and crossed(before, step, eval_every) and not last:
            last_eval = do_eval(step, full=False)
    if profiler is not None:
        profiler.join()
    if mode == "train_and_eval" or step == start_step:
        last_eval = do_eval(step, full=bool(config.eval.final_full))
        k = int(config.eval.average_last_k)
        if k > 0:
            last_eval["average_last_k"] = eval_checkpoint_average(trainer, ckpt, k, do_eval, step)
    run_summary.update(
        status="finished", step=step, wall_time_s=wall_before + time.perf_counter() - t_start
    )
    if chief:
        summaries.write_json(summary_path, run_summary)
    writer.close()
    return last_eval
