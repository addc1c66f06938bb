"""Choosing the tf.distribute strategy: TPU pod slice / TPU VM, multi-worker, GPUs, or the CPU default."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging


class TPUUnavailableError(RuntimeError):
    """`--tpu` named a TPU that cannot be reached or initialised."""


class PeerTimeoutError(RuntimeError):
    """A worker or TPU host did not join within `runtime.peer_timeout_s`."""


class SharedPathError(ValueError):
    """A path that remote hosts must reach is local to the client."""


class TPUNameError(ValueError):
    """`--tpu` is a TPU name, which only the Cloud TPU API (a client this project does not install) resolves."""


def require_tpu_address(tpu: str) -> None:
    """Refuses, in one line, a `--tpu` that is neither "local" nor a list of grpc:// addresses.

    TPUClusterResolver resolves a TPU *name* through the Cloud TPU API, which needs the `cloud-tpu-client`
    package this project must not install (it breaks protobuf): the run would stop with exit 2 after its
    imports. The working forms are named instead: the hosts' addresses (what scripts/tpu_address.sh
    prints, from `gcloud compute tpus tpu-vm describe`) or a launch through scripts/launch_pod.sh.
    """
    value = tpu.strip()
    if not value or value == "local":
        return
    if all(part.strip().startswith("grpc://") for part in value.split(",")):
        return
    raise TPUNameError(
        f"--tpu={value} is a TPU name, which needs the Cloud TPU API client this project does not "
        f"install; pass the hosts' addresses, --tpu=$(scripts/tpu_address.sh --name={value} "
        "--zone=ZONE) on worker 0 (--tpu=local on a one-host TPU VM), or start the run with "
        f"scripts/launch_pod.sh --name={value} --zone=ZONE"
    )


def tpu_resolver(tpu: str) -> tf.distribute.cluster_resolver.TPUClusterResolver:
    """The TPUClusterResolver for `--tpu`: "local" or `grpc://ip:8470,grpc://ip:8470,...` (a TPU name is
    refused by `require_tpu_address`).

    A slice's host addresses are passed as the one comma-separated string: TF splits it itself
    (`network_endpoints()`), while a Python list of more than one address makes TF's TPU client raise
    NotImplementedError("Using multiple TPUs in a single session is not yet implemented").
    `scripts/check_tpu.py` uses this function too, so the set-up check resolves exactly what training does.
    """
    require_tpu_address(tpu)
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu.strip())


def drives_remote_hosts(tpu: str) -> bool:
    """True when this process is a client that drives TPU hosts over gRPC (a grpc:// list; "local" not).

    Then tf.data reads, checkpoint SaveV2/RestoreV2 and summary writes run on the hosts, while Python file
    I/O (checkpoint lists, the carry files, JSON) runs on the client: every path must be shared (gs://).
    """
    return bool(tpu) and tpu.strip() != "local"


def require_shared_paths(tpu: str, **paths: str) -> None:
    """Raises SharedPathError (one line) when remote hosts are driven and a path is not on gs://."""
    if not drives_remote_hosts(tpu):
        return
    local = {k: v for k, v in paths.items() if v and not str(v).startswith("gs://")}
    if local:
        names = ", ".join(f"{k}={v}" for k, v in local.items())
        raise SharedPathError(
            f"--tpu={tpu} drives remote TPU hosts, which cannot see the client's local files: "
            f"use gs:// paths for {names}"
        )


def _reachable(address: str, timeout: float) -> bool:
    host, _, port = address.replace("grpc://", "").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def wait_for_peers(addresses: Sequence[str], timeout_s: float, what: str = "TPU host") -> None:
    """Waits until every `host:port` accepts a TCP connection, at most `timeout_s` seconds in all.

    Raises PeerTimeoutError naming the addresses that never answered (one line).
    """
    deadline = time.monotonic() + max(float(timeout_s), 0.0)
    missing = list(addresses)
    while True:
        missing = [a for a in missing if not _reachable(a, timeout=2.0)]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
    if missing:
        raise PeerTimeoutError(
            f"{len(missing)} {what}(s) did not answer within {timeout_s:g} s: {', '.join(missing)} "
            "(is the slice up and this client inside its network? raise runtime.peer_timeout_s "
            "for slow starts)"
        )


def _multi_worker_strategy(cluster: dict, timeout_s: float) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy whose wait for the other workers is bounded by `timeout_s`.

    Each worker blocks in TensorFlow's C++ context initialisation (holding the GIL) until every peer has
    registered with the coordination service, by default with no timeout: a worker whose peer never starts
    would wait forever. The strategy configures that service only when nothing did before it, so it is
    configured here the same way (standalone, led by the first chief/worker, all chief and worker tasks)
    plus a registration timeout; when it expires, the peers that do not accept connections are named in
    one line (PeerTimeoutError).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    spec = tf.train.ClusterSpec(cluster)
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in spec.jobs
    ]
    if context.context().coordination_service is None:
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(spec),
            coordinated_jobs=jobs,
            cluster_register_timeout_in_ms=max(int(float(timeout_s) * 1000), 1000),
        )
        # The leader (which hosts the service) waits for every task under the same deadline too.
        context.context().coordination_service.cluster_register_with_barrier = True
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError, RuntimeError) as e:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
        me = tf_config.get("task", {})
        missing = [
            f"{kind} {i} ({addr})"
            for kind in ("chief", "worker")
            for i, addr in enumerate(cluster.get(kind, []))
            if (kind, i) != (me.get("type"), me.get("index")) and not _reachable(addr, 2.0)
        ]
        raise PeerTimeoutError(
            f"The cluster did not assemble within {timeout_s:g} s; not answering: "
            f"{', '.join(missing) or 'none (' + type(e).__name__ + ')'}. Start every worker with the same "
            "TF_CONFIG cluster (or raise runtime.peer_timeout_s)."
        ) from None


def _tf_config_cluster() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e


def get_strategy(
    tpu: str = "", num_logical_cpus: int = 1, peer_timeout_s: float = 300.0
) -> tf.distribute.Strategy:
    """Returns the strategy for this machine.

    * `tpu` given ("local" on a TPU VM, or a TPU name / grpc:// address): TPUStrategy via
      TPUClusterResolver, with a one-line error when it cannot be reached;
    * TF_CONFIG describing several workers: MultiWorkerMirroredStrategy (GPU/CPU clusters);
    * one or more GPUs: MirroredStrategy;
    * CPU: MirroredStrategy over `num_logical_cpus` logical devices when > 1 (a correctness harness for the
      TPU code path), else the default strategy.

    A TPU host or worker that does not answer within `peer_timeout_s` raises PeerTimeoutError (one line).
    """
    if not tpu and num_logical_cpus > 1:
        from trm_tf import runtime

        # Must happen before anything initialises TF's devices (even listing GPUs does).
        runtime.configure_cpu_devices(num_logical_cpus)
    if tpu:
        try:
            resolver = tpu_resolver(tpu)
            if drives_remote_hosts(tpu):
                hosts = [a for job in resolver.cluster_spec().as_dict().values() for a in job]
                wait_for_peers(hosts, peer_timeout_s, "TPU host")
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except PeerTimeoutError:
            raise
        except Exception as e:  # NotFoundError, ValueError, IndexError, connection errors...
            raise TPUUnavailableError(
                f"Cannot use TPU {tpu!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e
        logging.info("Using TPUStrategy on %r with %d replicas", tpu, strategy.num_replicas_in_sync)
        return strategy
    cluster = _tf_config_cluster()
    if sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1:
        strategy = _multi_worker_strategy(cluster, peer_timeout_s)
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


def _cluster_workers() -> list[tuple[str, int, str]]:
    """(task type, index, address) of every chief/worker task in TF_CONFIG, in cluster order."""
    cluster = _tf_config_cluster()
    return [(k, i, a) for k in ("chief", "worker") for i, a in enumerate(cluster.get(k, []))]


def profiler_services(port: int) -> list[str]:
    """grpc:// addresses of every worker's profiler server in a TF_CONFIG cluster ([] without one).

    Workers that share a machine (the loopback rehearsal) get `port + position in the cluster`, so that
    each can start its own server; on separate machines all use `port`.
    """
    tasks = _cluster_workers()
    if port <= 0 or len(tasks) <= 1:
        return []
    hosts = [a.rpartition(":")[0] for _, _, a in tasks]
    shared = len(set(hosts)) < len(hosts)
    return [f"grpc://{h}:{port + (i if shared else 0)}" for i, h in enumerate(hosts)]


def own_profiler_port(port: int) -> int:
    """The port this process's profiler server listens on (see `profiler_services`)."""
    tasks = _cluster_workers()
    services = profiler_services(port)
    if not services:
        return port
    me = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    for pos, (kind, i, _) in enumerate(tasks):
        if (kind, i) == (me.get("type"), me.get("index")):
            return int(services[pos].rpartition(":")[2])
    return port


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


def worker_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices this process's replicas run on; for the default strategy (which has no such list),
    the device its ops go to: the first accelerator if there is one, else the CPU."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy
        devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"]
        return devices[:1] or [tf.config.list_logical_devices("CPU")[0].name]


def device_kind() -> str:
    for kind in ("TPU", "GPU"):
        devices = tf.config.list_logical_devices(kind)
        if devices:
            return f"{len(devices)}x{kind}"
    return f"{len(tf.config.list_logical_devices('CPU'))}xCPU"


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def runs_on_cpu(strategy: tf.distribute.Strategy) -> bool:
    """Whether every replica of `strategy` in this process runs on a CPU device."""
    devices = worker_devices(strategy)
    return {tf.DeviceSpec.from_string(d).device_type for d in devices} == {"CPU"}


def resolve_jit_compile(value, strategy: tf.distribute.Strategy, model_config) -> bool:
    """`runtime.jit_compile` ("auto", "true"/"false" or a bool) -> whether the cores use XLA.

    "auto" compiles with XLA everywhere except on CPU for an attention model or a bfloat16 / float16
    forward. Attention: XLA:CPU runs the small-head batched matmuls and the row softmax about 2x
    slower than TensorFlow's oneDNN kernels, and the train step is ~1.4x faster without XLA.
    bfloat16: XLA:CPU's dots use neither AMX nor AVX512-BF16, oneDNN's do (the step's element-wise
    work is then fused by XLA clusters, `runtime.cluster_fusible_ops`); float16: XLA:CPU emulates it,
    ~50x slower than TensorFlow's kernels (BENCHMARKS.md). An MLP-T model in float32 runs at the same
    speed either way on CPU and keeps XLA. TPUs always compile, whatever this says.
    """
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    if v != "auto":
        raise ValueError(f"runtime.jit_compile must be 'auto', 'true' or 'false', got {value!r}")
    if not runs_on_cpu(strategy):
        return True
    attention = not bool(model_config.get("mlp_t", False))
    low_precision = model_config.get("forward_dtype", "float32") in ("bfloat16", "float16")
    return not (attention or low_precision)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes that each hold part of the results (>1 only under MultiWorkerMirroredStrategy).

    A TPU pod has one client that sees every replica's results, so it counts as one.
    """
    return int(getattr(strategy.extended, "_num_workers", 1) or 1)


def _on_first_local_replica(strategy, value, empty):
    """A per-replica value: `value` on this process's first replica, `empty` on its others."""
    local = max(1, len(strategy.extended.worker_devices))

    def value_fn(ctx):
        return tf.constant(value if ctx.replica_id_in_sync_group % local == 0 else empty)

    return strategy.experimental_distribute_values_from_function(value_fn)


def sum_over_workers(strategy: tf.distribute.Strategy, vec: np.ndarray) -> np.ndarray:
    """Adds a float vector held by each worker process (identity with one process)."""
    if num_workers(strategy) <= 1:
        return vec
    vec = np.asarray(vec, np.float64)
    per_replica = _on_first_local_replica(strategy, vec, np.zeros_like(vec))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()


def gather_bytes(strategy: tf.distribute.Strategy, data: bytes) -> list[bytes]:
    """Every worker process's `data`, in worker order, on every worker ([data] with one process).

    Goes through the strategy's collectives (lengths by an all-gather, then the padded bytes as int32 by
    an all-gather), so no shared file system or polling is needed.
    """
    if num_workers(strategy) <= 1:
        return [data]
    mine = np.frombuffer(data, np.uint8).astype(np.int32)
    # The longest length (ReduceOp has no MAX): every process's length by a gather.
    lengths = strategy.gather(
        _on_first_local_replica(strategy, np.int32([len(mine)]), np.int32([0])), axis=0
    ).numpy()
    size = int(lengths.max())
    padded = np.zeros(size + 1, np.int32)  # a leading length, then the bytes
    padded[0] = len(mine)
    padded[1 : 1 + len(mine)] = mine
    gathered = strategy.gather(
        _on_first_local_replica(strategy, padded[None], np.full((1, size + 1), -1, np.int32)),
        axis=0,
    ).numpy()
    return [bytes(row[1 : 1 + row[0]].astype(np.uint8)) for row in gathered if row[0] >= 0]
