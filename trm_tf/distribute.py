"""Choosing the tf.distribute strategy: TPU pod slice / TPU VM, multi-worker, GPUs, or the CPU default."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging


class TPUUnavailableError(RuntimeError):
    """`--tpu` named a TPU that cannot be reached or initialised."""


def _tf_config_cluster() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e


def get_strategy(tpu: str = "", num_logical_cpus: int = 1) -> tf.distribute.Strategy:
    """Returns the strategy for this machine.

    * `tpu` given ("local" on a TPU VM, or a TPU name / grpc:// address): TPUStrategy via
      TPUClusterResolver, with a one-line error when it cannot be reached;
    * TF_CONFIG describing several workers: MultiWorkerMirroredStrategy (GPU/CPU clusters);
    * one or more GPUs: MirroredStrategy;
    * CPU: MirroredStrategy over `num_logical_cpus` logical devices when > 1 (a correctness harness for the
      TPU code path), else the default strategy.
    """
    if not tpu and num_logical_cpus > 1:
        from trm_tf import runtime

        # Must happen before anything initialises TF's devices (even listing GPUs does).
        runtime.configure_cpu_devices(num_logical_cpus)
    if tpu:
        try:
            # A comma-separated list of grpc:// addresses (all hosts of a slice) is passed as a list.
            target = [t.strip() for t in tpu.split(",")] if "," in tpu else tpu
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
            if tpu != "local":
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except Exception as e:  # NotFoundError, ValueError, IndexError, connection errors...
            raise TPUUnavailableError(
                f"Cannot use TPU {tpu!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e
        logging.info("Using TPUStrategy on %r with %d replicas", tpu, strategy.num_replicas_in_sync)
        return strategy
    cluster = _tf_config_cluster()
    if sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logging.info(
            "TF_CONFIG describes a multi-worker cluster: using MultiWorkerMirroredStrategy "
            "(%d replicas)",
            strategy.num_replicas_in_sync,
        )
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        strategy = tf.distribute.MirroredStrategy()
        logging.info("Using MirroredStrategy on %d GPUs", len(gpus))
        return strategy
    if num_logical_cpus > 1:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:num_logical_cpus]
        logging.info("Using MirroredStrategy over %d logical CPUs", len(devices))
        return tf.distribute.MirroredStrategy(devices)
    logging.info("Using the default strategy (one CPU device)")
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the process that writes summaries, JSON logs and the real checkpoint."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        # TPU pods: every host runs the program; task 0 writes (TPUStrategy's worker 0).
        if isinstance(strategy, tf.distribute.TPUStrategy):
            return getattr(resolver, "task_id", 0) in (0, None)
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """Index of this host among the workers (0 on single-host set-ups)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = getattr(resolver, "task_id", None)
    return int(task_id or 0)


def device_kind() -> str:
    for kind in ("TPU", "GPU"):
        devices = tf.config.list_logical_devices(kind)
        if devices:
            return f"{len(devices)}x{kind}"
    return f"{len(tf.config.list_logical_devices('CPU'))}xCPU"


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def resolve_jit_compile(value, strategy: tf.distribute.Strategy, model_config) -> bool:
    """`train.jit_compile` ("auto", "true"/"false" or a bool) -> whether the cores use XLA.

    "auto" compiles with XLA everywhere except an attention model on CPU: there XLA:CPU runs the
    small-head batched matmuls and the row softmax about 2x slower than TensorFlow's oneDNN kernels,
    and the train step is ~1.4x faster without XLA (BENCHMARKS.md). MLP-T runs at the same speed
    either way on CPU and keeps XLA. TPUs always compile, whatever this says.
    """
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    if v != "auto":
        raise ValueError(f"train.jit_compile must be 'auto', 'true' or 'false', got {value!r}")
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: ops go to an accelerator if there is one
        devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"]
        devices = devices or ["/device:CPU:0"]
    on_cpu = {tf.DeviceSpec.from_string(d).device_type for d in devices} == {"CPU"}
    attention = not bool(model_config.get("mlp_t", False))
    return not (on_cpu and attention)
