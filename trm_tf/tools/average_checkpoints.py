r"""Averages the weights of a run's last K checkpoints (SWA-style, E4.4) into a new checkpoint.

  python -m trm_tf.tools.average_checkpoints --checkpoint=gs://BUCKET/runs/e4_4 --last_k=5 \
      --out=gs://BUCKET/runs/e4_4/averaged/ckpt

`--around=best` averages the run's best checkpoint (`RUN_DIR/best`, kept by `eval.best_metric`) with the
newest K-1 of its checkpoints before the best's step that are still on disk (default output
`RUN_DIR/averaged_best/ckpt`); the log line names every checkpoint averaged, so which ones were used
is never implicit.

The model is rebuilt from the run directory's config.json (`--config` overrides it). Every checkpoint
averaged is checked to hold every model variable first, so a mismatch stops with one line instead of
averaging random weights in.

The output holds `model=` (the averaged dense weights; the puzzle embedding and H/L init are taken from
the newest checkpoint, as they are not averaged by EMA either) and no EMA, so it loads with
`python -m trm_tf.tools.solve --checkpoint=<written prefix> --noema` (its config is found in the run
directory two levels up). For an evaluation of the average next to EMA inside a run, set
`--config.eval.average_last_k=K` instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from trm_tf.tools import restore  # noqa: E402


def define_flags() -> None:
    """The program's flags, defined only when it runs as a program: `solve` has flags of the same names
    (--checkpoint, --config), and absl refuses a second definition in one process."""
    flags.DEFINE_string("checkpoint", None, "Run directory (local or gs://).")
    flags.DEFINE_alias("workdir", "checkpoint")
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config the run was trained with (default: the run directory's config.json).",
    )
    flags.DEFINE_integer("last_k", 5, "How many of the newest checkpoints to average.")
    flags.DEFINE_enum(
        "around",
        "last",
        ["last", "best"],
        "last: the newest K checkpoints; best: the best checkpoint and the K-1 checkpoints before it.",
    )
    flags.DEFINE_string(
        "out",
        None,
        "Checkpoint prefix to write (default RUN_DIR/averaged/ckpt, RUN_DIR/averaged_best/ckpt with "
        "--around=best).",
    )


def last_checkpoints(run_dir: str, last_k: int) -> list[str]:
    """The newest `last_k` checkpoint prefixes of a run, oldest first."""
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    if not state or not state.all_model_checkpoint_paths:
        raise restore.RestoreError(f"no checkpoints in {os.path.join(run_dir, 'checkpoints')}")
    return list(state.all_model_checkpoint_paths)[-last_k:]


def _step(path: str) -> int:
    return int(path.rsplit("-", 1)[1])


def around_best(run_dir: str, last_k: int) -> list[str]:
    """The best checkpoint (`RUN_DIR/best`) and the newest `last_k` - 1 checkpoints of the run before its
    step that still exist, oldest first (fewer when the ring pruned them: a warning says how many)."""
    from trm_tf.checkpointing import BEST_DIR

    best_dir = os.path.join(run_dir, BEST_DIR)
    if not tf.io.gfile.glob(os.path.join(best_dir, "ckpt-*.index")):
        raise restore.RestoreError(
            f"no best checkpoint in {best_dir} (a run keeps one after its first evaluation)"
        )
    best = restore.checkpoint_prefix(best_dir)
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    ring = list(state.all_model_checkpoint_paths) if state else []
    before = [p for p in ring if _step(p) < _step(best)][-(last_k - 1) :] if last_k > 1 else []
    if len(before) < last_k - 1:
        logging.warning(
            "Only %d checkpoint(s) before the best (step %d) are still on disk; averaging %d, not %d",
            len(before),
            _step(best),
            len(before) + 1,
            last_k,
        )
    return before + [best]


def average(config, paths: list[str], out: str) -> str:
    """Writes the mean of the model weights of checkpoints `paths` to prefix `out`; returns the path
    written. Every checkpoint is verified to hold every model variable before any is read."""
    from trm_tf import checkpointing

    model = restore.load_model(config, paths[-1], use_ema=False)
    for path in paths[:-1]:
        restore.check_restorable(path, model=model)
    averaged = checkpointing.average_checkpoint_weights(model, paths)
    for v, w in zip(model.trainable_variables, averaged):
        v.assign(w)
    return tf.train.Checkpoint(model=model).write(out)


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.checkpoint:
        raise app.UsageError("--checkpoint=RUN_DIR is required")
    try:
        config = restore.resolve_config(f.checkpoint, f.config)
        if f.around == "best":
            paths, default_out = around_best(f.checkpoint, f.last_k), "averaged_best"
        else:
            paths, default_out = last_checkpoints(f.checkpoint, f.last_k), "averaged"
        written = average(config, paths, f.out or os.path.join(f.checkpoint, default_out, "ckpt"))
    except restore.RestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    logging.info(
        "Averaged %d checkpoints around the %s one (%s) into %s",
        len(paths),
        f.around,
        ", ".join(paths),
        written,
    )
    print(written)


if __name__ == "__main__":
    define_flags()
    app.run(main)
