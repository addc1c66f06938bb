"""Process-level runtime set-up: logical CPU devices, log noise, determinism knobs.

Everything here must run before TensorFlow executes its first op.
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
