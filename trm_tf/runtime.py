"""Process-level runtime set-up: logical CPU devices, log noise, determinism knobs, matmul precision,
the forward dtype a CPU run picks (`resolve_forward_dtype`), and how the process ends.

The device and logging set-up must run before TensorFlow executes its first op; the matmul precision
before the first function is traced.
"""

import os

import tensorflow as tf

from trm_tf import distribute


def quiet_tensorflow() -> None:
    """Silences TF/absl start-up noise (must run before `import tensorflow` for the C++ lines)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf.get_logger().setLevel("ERROR")


def configure_cpu_devices(num_logical_cpus: int = 1) -> None:
    """Splits the host CPU into `num_logical_cpus` logical devices (for MirroredStrategy tests).

    A no-op when the devices were already initialised with that count; raises a clear error when they
    were initialised differently (TF cannot change it after the first op).
    """
    cpus = tf.config.list_physical_devices("CPU")
    if not cpus or num_logical_cpus <= 1:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_logical_cpus
        )
    except RuntimeError as e:  # already initialised
        have = len(tf.config.list_logical_devices("CPU"))
        if have != num_logical_cpus:
            raise RuntimeError(
                f"TensorFlow already initialised with {have} logical CPUs; cannot switch to "
                f"{num_logical_cpus}. Configure devices before running any TF op."
            ) from e


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of this machine's CPU as the operating system reports them (the first
    `flags` line of /proc/cpuinfo on Linux); empty where there is no such file.

    A local pseudo-file read with `open`: `tf.io.gfile` sees /proc files as empty (their size is 0).
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_matrix_unit(flags: frozenset[str] | None = None) -> str:
    """The unit that runs this CPU's bfloat16 matmuls in oneDNN: "amx" (AMX tiles, enabled by the
    OS), "avx512_bf16" (dot-product instructions only) or "none".

    Only "amx" makes bfloat16 matmuls faster than float32 on the Intel Xeons this project measured
    (oneDNN 1.3-1.5 TFLOP/s vs ~0.34 float32 with AMX; without it, AVX512-BF16 dots at 0.11-0.18
    vs 0.17-0.34 float32: BENCHMARKS.md).
    """
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "amx_tile"} <= flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "none"


def resolve_forward_dtype(value: str, on_cpu: bool, flags: frozenset[str] | None = None) -> str:
    """`model.forward_dtype` -> the dtype the run computes in.

    "auto" is bfloat16 (the paper's dtype) on accelerators and on a CPU whose bfloat16 matmuls run on
    AMX (`cpu_bf16_matrix_unit`), where the bfloat16 step is the faster one; float32 on any other
    CPU, where bfloat16 matmuls are no faster than float32 ones and the casts cost extra. Any other
    value is returned as it is. `flags`: the CPU's flags (default: `cpu_flags()`).
    """
    if value != "auto":
        return value
    if not on_cpu:
        return "bfloat16"
    return "bfloat16" if cpu_bf16_matrix_unit(flags) == "amx" else "float32"


# TensorFlow's auto-clustering flags for the bfloat16 CPU step (`cluster_fusible_ops`): CPU clusters allowed
# once auto-clustering is switched on, and only of ops XLA fuses (no dots).
_CLUSTER_FLAGS = ("--tf_xla_cpu_global_jit", "--tf_xla_ops_to_cluster=FUSIBLE")


def _eager_context_initialized() -> bool:
    from tensorflow.python.eager import context

    return bool(getattr(context.context(), "_initialized", False))


def _allow_cpu_fusion_clusters(environ=os.environ) -> None:
    """Adds `_CLUSTER_FLAGS` to TF_XLA_FLAGS (each unless the variable sets that flag already).

    TensorFlow reads them when it initialises its devices (the process's first op), so this runs when
    this module is imported. Neither changes anything until auto-clustering is switched on
    (`cluster_fusible_ops`), which nothing else in this project does.
    """
    flags = environ.get("TF_XLA_FLAGS", "")
    add = [f for f in _CLUSTER_FLAGS if f.split("=")[0] not in flags]
    if add:
        environ["TF_XLA_FLAGS"] = " ".join([flags, *add]).strip()


_CLUSTERS_POSSIBLE = not _eager_context_initialized()
_allow_cpu_fusion_clusters()


def cluster_fusible_ops() -> bool:
    """Lets XLA compile the element-wise chains of functions that run without XLA, leaving their
    matmuls to TensorFlow's oneDNN kernels: the bfloat16 CPU step (`uses_fusion_clusters`).

    TensorFlow's auto-clustering (`tf.config.optimizer.set_jit("autoclustering")`), allowed on CPU
    and restricted to the ops XLA can fuse (element-wise ops, reductions, casts, transposes; no
    dots) by the TF_XLA_FLAGS this module sets when imported, so each chain between two matmuls
    runs as one XLA fusion instead of one TensorFlow op per element-wise step. Functions compiled
    whole (`jit_compile=True`) are unaffected. Process-wide, for functions traced after the call.

    Returns False, with a warning and nothing changed, when TensorFlow had initialised its devices
    before this module was imported: the CPU device has then been registered without clusters.
    """
    if not _CLUSTERS_POSSIBLE:
        from absl import logging

        logging.warning(
            "XLA fusion clusters unavailable: TensorFlow ran ops before trm_tf.runtime was imported "
            "(TF_XLA_FLAGS=%s is read at the first op); the bfloat16 step runs TensorFlow's kernels",
            " ".join(_CLUSTER_FLAGS),
        )
        return False
    tf.config.optimizer.set_jit("autoclustering")
    return True


def uses_fusion_clusters(jit_setting, jit_compile: bool, forward_dtype: str, on_cpu: bool) -> bool:
    """Whether a run clusters its element-wise ops for XLA (`cluster_fusible_ops`): a bfloat16 forward
    on CPU without XLA around the step, by `runtime.jit_compile="auto"` (an explicit "false" keeps
    TensorFlow's kernels alone)."""
    return (
        on_cpu
        and forward_dtype == "bfloat16"
        and not jit_compile
        and str(jit_setting).strip().lower() == "auto"
    )


MATMUL_PRECISIONS = ("auto", "highest", "default")


class MatmulPrecisionError(ValueError):
    """`highest` was asked for where this process's setting cannot reach the compiler (remote hosts)."""


def compiles_remotely() -> bool:
    """True when this process drives remote hosts over gRPC (`tf.config.experimental_connect_to_cluster`):
    its functions then run, and are compiled by XLA, in the hosts' TensorFlow processes (on a TPU pod,
    worker 0's TPU runtime), not here."""
    from tensorflow.python.eager import context

    return context.context().get_server_def() is not None


def resolve_matmul_precision(mode: str, forward_dtype: str, remote_compile: bool = False) -> str:
    """`runtime.matmul_precision` -> "highest" or "default" (see `set_matmul_precision`).

    Raises MatmulPrecisionError (one line) when it resolves to "highest" but the program is compiled on
    remote hosts (`remote_compile`): the switch is a flag of the process that lowers the program to XLA,
    and no TensorFlow API carries it to another process, so the float32 matmuls there would silently run
    as one bfloat16 pass (tests/runtime_test.py shows a remote compile ignoring the client's flag).
    """
    mode = str(mode).lower()
    if mode not in MATMUL_PRECISIONS:
        raise ValueError(
            f"runtime.matmul_precision must be one of {MATMUL_PRECISIONS}, got {mode!r}"
        )
    resolved = mode
    if mode == "auto":
        resolved = "highest" if forward_dtype == "float32" else "default"
    if resolved == "highest" and remote_compile:
        why = "" if mode == "highest" else f" (auto, as model.forward_dtype={forward_dtype})"
        raise MatmulPrecisionError(
            f"runtime.matmul_precision={resolved}{why} cannot reach a TPU slice driven over gRPC: the "
            "program is compiled in worker 0's TPU runtime, whose float32 matmul precision this process "
            "cannot set, so float32 matmuls would run as one bfloat16 pass; run it on one host "
            "(--tpu=local on a single-host slice such as a v4-8), or accept single-pass bfloat16 "
            "matmuls with --config.runtime.matmul_precision=default"
        )
    return resolved


def set_matmul_precision(mode: str, forward_dtype: str, remote_compile: bool | None = None) -> str:
    """Sets the process-wide precision of float32 matmuls/convolutions; returns the resolved mode.

    On TPU, XLA runs a float32 dot at DEFAULT precision, a single bfloat16 pass (about 8 mantissa bits),
    unless told otherwise. TF's XLA bridge marks every float32 dot and convolution it lowers with
    `operand_precision={highest,highest}` (full float32, several bf16 passes) exactly when TensorFloat-32
    execution is disabled, so the switch is `tf.config.experimental.enable_tensor_float_32_execution`
    (on GPUs the same switch keeps float32 matmuls off the TF32 tensor-core path; on CPU it changes
    nothing). bfloat16 and float16 matmuls are unaffected: their operands have no bits to lose.

    The switch is read by the process that lowers the program: this one on CPU, GPU, a single-host TPU
    VM (`--tpu=local`) and in each MultiWorkerMirrored worker; on a multi-host slice driven over gRPC it is
    worker 0's TPU runtime, which the switch does not reach, so "highest" is refused there
    (`resolve_matmul_precision`) and the returned mode is always the one in force.

    Args:
        mode: "auto" ("highest" when forward_dtype is "float32", so the float32 arm of a precision
            experiment really computes in float32; "default" otherwise), "highest" or "default".
        forward_dtype: the model's forward dtype ("float32", "bfloat16", "float16").
        remote_compile: whether the program is compiled on remote hosts (None: `compiles_remotely()`).

    Returns:
        "highest" or "default".

    The setting is read when a function is traced: call this before building or tracing anything
    (functions traced earlier keep the precision they were lowered with).
    """
    if remote_compile is None:
        remote_compile = compiles_remotely()
    mode = resolve_matmul_precision(mode, forward_dtype, remote_compile)
    tf.config.experimental.enable_tensor_float_32_execution(mode == "default")
    return mode


def exits_hard(strategy, server_started: bool | None = None) -> bool:
    """Whether this process must end without interpreter teardown (`end_process`).

    True for a worker of a multi-process cluster (MultiWorkerMirroredStrategy) and for any process that
    started TensorFlow's gRPC server: a client that drives TPU hosts (`connect_to_cluster`, its
    TPUStrategy runs a server for the remote hosts) or collective ops over gRPC. `server_started`
    overrides the check of this process's eager context (tests).
    """
    if distribute.num_workers(strategy) > 1:
        return True
    if server_started is None:
        from tensorflow.python.eager import context

        ctx = context.context()
        server_started = (
            ctx.get_server_def() is not None
            or getattr(ctx, "_collective_ops_server_def", None) is not None
        )
    return bool(server_started)


def end_process(strategy, code: int = 0, server_started: bool | None = None) -> None:
    """Ends the process with exit status `code` once everything is written (the caller has closed its
    files and released the workdir lock).

    A process that `exits_hard` flushes absl logging, stdout and stderr and leaves with `os._exit(code)`:
    TF's gRPC and profiler servers "do not support clean shutdown", and their destructors have crashed a
    finished worker in interpreter teardown (SIGSEGV after its last checkpoint, seen in the two-process
    rehearsal under load) or hang there, which a batch runner would record as a failure or wait on. Any
    other process: `sys.exit(code)`. Never returns.
    """
    import sys

    from absl import logging

    if exits_hard(strategy, server_started):
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
