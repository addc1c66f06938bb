r"""Averages the weights of a run's last K checkpoints (SWA-style, E4.4) into a new checkpoint.

  python -m trm_tf.average_checkpoints --workdir=gs://BUCKET/runs/e4_4 --last_k=5 \
      --out=gs://BUCKET/runs/e4_4/averaged/ckpt

The output holds `model=` (the averaged dense weights; the puzzle embedding and H/L init are taken from
the newest checkpoint, as they are not averaged by EMA either) and loads with `trm_tf.solve
--checkpoint=<out>`-style restores. For an evaluation of the average next to EMA inside a run, set
`--config.eval.average_last_k=K` instead.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

import ml_collections  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (local or gs://).")
_LAST_K = flags.DEFINE_integer("last_k", 5, "How many of the newest checkpoints to average.")
_OUT = flags.DEFINE_string(
    "out", None, "Checkpoint prefix to write (default WORKDIR/averaged/ckpt)."
)
flags.mark_flag_as_required("workdir")


def main(argv):
    del argv
    from trm_tf import checkpointing, solve

    workdir = _WORKDIR.value
    with tf.io.gfile.GFile(os.path.join(workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    if not state or not state.all_model_checkpoint_paths:
        raise app.UsageError(f"no checkpoints in {workdir}/checkpoints")
    paths = list(state.all_model_checkpoint_paths)[-_LAST_K.value :]
    model = solve.load_model(config, paths[-1], use_ema=False)
    averaged = checkpointing.average_checkpoint_weights(model, paths)
    for v, w in zip(model.trainable_variables, averaged):
        v.assign(w)
    out = _OUT.value or os.path.join(workdir, "averaged", "ckpt")
    written = tf.train.Checkpoint(model=model).write(out)
    logging.info("Averaged %d checkpoints (%s) into %s", len(paths), ", ".join(paths), written)
    print(written)


if __name__ == "__main__":
    app.run(main)
