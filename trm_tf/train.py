"""The outer training loop (Orbit's Controller role): restore, train loops, logs, evals, checkpoints.

`run(config, workdir, strategy, mode)` is what `launch.py` calls. It always resumes from the newest
checkpoint in `workdir`, so a preempted job is restarted with the same command.
"""

from __future__ import annotations

import math
import os
import signal
import sys
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


def _round_up(x: int, multiple: int) -> int:
    return max(multiple, int(math.ceil(x / multiple)) * multiple)


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


# Host-side features the ARC voting evaluator needs (strings cannot travel to a TPU).
ARC_HOST_FEATURES = ("inputs", "task_name", "test_index", "transform_id", "color_map")


def _arc_feeder(arc, host: dict):
    """Turns per-replica eval outputs into ARCEvaluator.update batches via the rows' `index`."""
    n = len(host["inputs"])

    def feed(out: dict) -> None:
        idx = np.minimum(out["index"], n - 1)  # padded rows (mask False) point past the end
        batch = {k: host[k][idx] for k in ARC_HOST_FEATURES}
        batch.update(preds=out["preds"], q_halt=out["q_halt"], mask=out["mask"])
        arc.update(batch)

    return feed


def _arc_results(arc, strategy, workdir, step, spec, chief, worker, write=True) -> dict:
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
    truth = arc_eval.load_ground_truth(tfds.builder(spec.name, data_dir=spec.data_dir).data_dir)
    result = arc.result(truth)
    if chief and write:
        arc.write_submission(os.path.join(workdir, f"submission_step{step}.json"), truth)
    return result


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


def run(
    config, workdir: str, strategy: tf.distribute.Strategy, mode: str = "train_and_eval"
) -> dict:
    """Trains and/or evaluates `config` in `workdir`; returns the last evaluation's metrics."""
    chief = distribute.is_chief(strategy)
    worker = distribute.worker_index(strategy)
    data = config.data
    name = f"{data.name}/{data.config}"
    spec = datasets.ensure_dataset(name, data.data_dir, data.build_if_missing, data.manual_dir)
    total_steps, eval_every = resolve_schedule(config, spec)
    spl = int(config.train.steps_per_loop)
    log_every = _round_up(int(config.train.log_every_steps), spl)
    ckpt_every = _round_up(int(config.train.checkpoint_every_steps), spl)
    eval_every = _round_up(eval_every, spl)

    trainer = Trainer(config, strategy, spec, total_steps)
    writer = summaries.MetricWriter(workdir, enabled=chief)
    keep = max(int(config.train.max_checkpoints), int(config.eval.get("average_last_k", 0)))
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
        "dataset": name,
        "wall_time_s": 0.0,
        "examples_per_s": 0.0,
    }
    logging.info(
        "%s: %s, %d params, %d replicas x %d examples, %d steps (eval every %d), start at step %d, "
        "XLA %s (train.jit_compile=%s)",
        config.experiment_id,
        name,
        run_summary["num_params"],
        trainer.num_replicas,
        trainer.per_replica_batch,
        total_steps,
        eval_every,
        start_step,
        "on" if trainer.jit_compile else "off",
        config.train.jit_compile,
    )
    results_path = os.path.join(workdir, "eval_results.json")
    results = summaries.read_json(results_path, {"latest": {}, "history": []})

    def do_eval(step: int, full: bool, use_ema: bool | None = None, tag: str = "") -> dict:
        subset = -1 if full else int(config.eval.subset_size)
        use_ema = config.eval.use_ema if use_ema is None else use_ema
        arc = arc_eval.ARCEvaluator() if config.eval.get("evaluator", "") == "arc" else None
        extra = ARC_HOST_FEATURES if arc is not None else ()
        dist, steps, host = input_pipeline.distribute_eval(
            strategy, spec, config.eval.global_batch_size, subset, extra
        )
        on_batch = _arc_feeder(arc, host) if arc is not None else None
        t0 = time.perf_counter()
        metrics = trainer.evaluate(dist, steps, use_ema=use_ema, on_batch=on_batch)
        if arc is not None:
            metrics.update(
                _arc_results(arc, strategy, workdir, step, spec, chief, worker, write=not tag)
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

    if config.train.get("profiler_port", 0) > 0 and chief:
        tf.profiler.experimental.server.start(int(config.train.profiler_port))
        logging.info(
            "Profiler server on port %d (capture with scripts/capture_profile.sh)",
            config.train.profiler_port,
        )
    sigterm = _SigtermFlag()
    dist_train = input_pipeline.distribute_train(
        strategy,
        spec,
        trainer.global_batch,
        config.seed,
        start_step,
        config.data.prefetch,
        config.data.get("host_sharding", "files"),
    )
    iterator = iter(dist_train)
    step = start_step
    t_start = time.perf_counter()
    wall_before = float(summaries.read_json(summary_path, {}).get("wall_time_s", 0.0))
    last_eval: dict = {}
    window_steps, window_t0 = 0, time.perf_counter()
    trainer.reset_metrics()
    profiling = False
    prof_start = int(config.train.profile_start_step)
    while step < total_steps:
        n = min(spl, total_steps - step, trainer.steps_to_stage_change(step))
        if prof_start >= 0 and not profiling and step <= prof_start < step + spl:
            n = max(1, int(config.train.profile_num_steps))
            if chief:
                tf.profiler.experimental.start(workdir)
                profiling = True
        trainer.train_loop(iterator, n)
        step += n
        window_steps += n
        if profiling:
            tf.profiler.experimental.stop()
            profiling = False
            prof_start = -1
            logging.info(
                "Profiler trace of steps %d-%d written to %s/plugins/profile",
                step - n,
                step,
                workdir,
            )
        last = step >= total_steps
        if step % log_every == 0 or last or sigterm.received:
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
        if step % ckpt_every == 0 or last or sigterm.received:
            ckpt.save(step)
        if sigterm.received:
            logging.warning("SIGTERM received: saved checkpoint at step %d, exiting.", step)
            run_summary.update(status="preempted")
            if chief:
                summaries.write_json(summary_path, run_summary)
            return last_eval
        if mode == "train_and_eval" and (step % eval_every == 0) and not last:
            last_eval = do_eval(step, full=False)
    if mode == "train_and_eval" or step == start_step:
        last_eval = do_eval(step, full=bool(config.eval.final_full))
        k = int(config.eval.get("average_last_k", 0))
        if k > 0:
            last_eval["average_last_k"] = eval_checkpoint_average(trainer, ckpt, k, do_eval, step)
    run_summary.update(
        status="finished", step=step, wall_time_s=wall_before + time.perf_counter() - t_start
    )
    if chief:
        summaries.write_json(summary_path, run_summary)
    writer.close()
    return last_eval
