r"""Trains and evaluates a TRM experiment described by an ml_collections config file.

  python launch.py --config=configs/quickstart.py --workdir=/tmp/trm_quickstart
  python launch.py --config=configs/e2_3_attention.py --workdir=gs://BUCKET/runs/e2_3 --tpu=local
  python launch.py --config=configs/e1_1_baseline.py:runlocal --workdir=/tmp/smoke \
      --config.model.hidden_size=32

Every run resumes from the newest checkpoint in --workdir, so a preempted job restarts with the same command.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from trm_tf import distribute, summaries  # noqa: E402
from trm_tf.data.datasets import DatasetMissingError  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file (configs/*.py), optionally with ':arg'.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (local path or gs://...).")
_MODE = flags.DEFINE_enum(
    "mode", "train_and_eval", ["train", "eval", "train_and_eval"], "What to run."
)
_TPU = flags.DEFINE_string(
    "tpu", "", "TPU to use: 'local' on a TPU VM, or a TPU name / grpc address."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    tf.get_logger().setLevel("ERROR")
    config = _CONFIG.value
    workdir = _WORKDIR.value if "://" in _WORKDIR.value else os.path.abspath(_WORKDIR.value)
    try:
        strategy = distribute.get_strategy(_TPU.value, config.runtime.num_logical_cpus)
    except distribute.TPUUnavailableError as e:
        logging.error("%s", e)
        sys.exit(2)
    tf.io.gfile.makedirs(workdir)
    if distribute.is_chief(strategy):
        with tf.io.gfile.GFile(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    logging.info("Config:\n%s", config)
    from trm_tf import train  # noqa: PLC0415  (imports Keras/TFDS only after flags parse)

    try:
        train.run(config, workdir, strategy, _MODE.value)
    except DatasetMissingError as e:
        logging.error("%s", e)
        sys.exit(3)
    except train.NonFiniteLossError as e:
        logging.error("%s", e)
        summaries.write_json(
            os.path.join(workdir, "run_summary.json"),
            {
                **summaries.read_json(os.path.join(workdir, "run_summary.json"), {}),
                "status": "failed",
                "error": str(e),
            },
        )
        sys.exit(4)


if __name__ == "__main__":
    app.run(main)
