"""Test set-up shared by every test tree: quiet TF, two logical CPUs, no autotune stalls.

Environment variables must be set before TensorFlow is imported, and logical devices must be configured
before the first op, so this file does both at import time (pytest imports it before any test module).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TFDS_DISABLE_PROGRESS_BAR", "1")

from trm_tf import runtime  # noqa: E402

runtime.configure_cpu_devices(num_logical_cpus=2)
