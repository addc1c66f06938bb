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

import itertools  # noqa: E402

import tensorflow as tf  # noqa: E402

# Every MirroredStrategy in one process starts from the same collective group and instance keys, and
# TF caches the parameters of a collective instance per process: a later strategy's "instance 100" then
# meets an earlier one's cached shape ("Shape mismatch in the collective instance 100", TF issue 61314).
# A process of ours builds one strategy; the test processes build many, so each gets its own key range,
# through the attribute TF keeps for exactly this ("Only set this in tests", mirrored_strategy.py).
_key_bases = itertools.count(1)
_mirrored_init = tf.distribute.MirroredStrategy.__init__


def _mirrored_init_with_own_keys(self, *args, **kwargs):
    self._collective_key_base = 100_000 * next(_key_bases)
    _mirrored_init(self, *args, **kwargs)


tf.distribute.MirroredStrategy.__init__ = _mirrored_init_with_own_keys
