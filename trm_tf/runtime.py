"""Process-level runtime set-up: logical CPU devices, log noise, determinism knobs, matmul precision.

The device and logging set-up must run before TensorFlow executes its first op; the matmul precision
before the first function is traced.
"""

import os

import tensorflow as tf


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


MATMUL_PRECISIONS = ("auto", "highest", "default")


def set_matmul_precision(mode: str, forward_dtype: str) -> str:
    """Sets the process-wide precision of float32 matmuls/convolutions; returns the resolved mode.

    On TPU, XLA runs a float32 dot at DEFAULT precision, a single bfloat16 pass (about 8 mantissa bits),
    unless told otherwise. TF's XLA bridge marks every float32 dot and convolution it lowers with
    `operand_precision={highest,highest}` (full float32, several bf16 passes) exactly when TensorFloat-32
    execution is disabled, so the switch is `tf.config.experimental.enable_tensor_float_32_execution`
    (on GPUs the same switch keeps float32 matmuls off the TF32 tensor-core path; on CPU it changes
    nothing). bfloat16 and float16 matmuls are unaffected: their operands have no bits to lose.

    Args:
        mode: "auto" ("highest" when forward_dtype is "float32", so the float32 arm of a precision
            experiment really computes in float32; "default" otherwise), "highest" or "default".
        forward_dtype: the model's forward dtype ("float32", "bfloat16", "float16").

    Returns:
        "highest" or "default".

    The setting is read when a function is traced: call this before building or tracing anything
    (functions traced earlier keep the precision they were lowered with).
    """
    mode = str(mode).lower()
    if mode not in MATMUL_PRECISIONS:
        raise ValueError(
            f"runtime.matmul_precision must be one of {MATMUL_PRECISIONS}, got {mode!r}"
        )
    if mode == "auto":
        mode = "highest" if forward_dtype == "float32" else "default"
    tf.config.experimental.enable_tensor_float_32_execution(mode == "default")
    return mode
