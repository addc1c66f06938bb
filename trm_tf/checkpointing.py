"""Checkpoints in the workdir (local or gs://): tf.train.CheckpointManager plus per-host ACT carry files.

The tf.train.Checkpoint holds model weights, puzzle embedding, EMA shadow, optimizer slots and iterations,
and the global step. The ACT carry is per replica (each replica owns different slots), which a
tf.train.Checkpoint cannot hold (it keeps one copy of a per-replica variable), so each host writes its local
replicas' carry to `checkpoints/carry-<step>.host<k>.npz`. Those files store every array as raw bytes plus its
TensorFlow dtype name (`encode_arrays` / `decode_arrays`): NumPy's own format cannot describe bfloat16 (it
loads back as an opaque `|V2` that cannot be cast), and every TPU config carries its latents in bfloat16. The
input position needs no state: it is a pure
function of the step (trm_tf.data.input_pipeline), so restoring model + optimizer + EMA + step + carry
continues a run exactly.

Under multi-worker strategies every worker must take part in saving; non-chief workers write to a temporary
directory that is deleted afterwards (the TF multi-worker recipe).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

_DTYPE_PREFIX = "__dtype__"


def encode_arrays(values: dict[str, np.ndarray]) -> bytes:
    """An `.npz` that round-trips every TensorFlow dtype (bfloat16 included) bit for bit.

    Each array is stored as its raw bytes viewed as unsigned integers of the same width, next to an entry
    `__dtype__<key>` holding the TensorFlow dtype name.
    """
    out = {}
    for k, v in values.items():
        v = np.ascontiguousarray(v)
        name = tf.as_dtype(v.dtype).name
        out[k] = v.view(np.dtype(f"u{v.dtype.itemsize}")) if v.dtype != np.bool_ else v
        out[_DTYPE_PREFIX + k] = np.array(name)
    buf = io.BytesIO()
    np.savez(buf, **out)
    return buf.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of `encode_arrays`; files written before it (plain `np.savez`) load as they are."""
    raw = dict(np.load(io.BytesIO(data)))
    out = {}
    for k, v in raw.items():
        if k.startswith(_DTYPE_PREFIX):
            continue
        name = raw.get(_DTYPE_PREFIX + k)
        out[k] = v.view(tf.as_dtype(str(name)).as_numpy_dtype) if name is not None else v
    return out


class CheckpointIO:
    """Save/restore of a Trainer's state in `workdir/checkpoints`."""

    def __init__(self, trainer, workdir: str, max_to_keep: int, chief: bool, worker: int):
        self.trainer = trainer
        self.chief = chief
        self.worker = worker
        self.real_dir = os.path.join(workdir, "checkpoints")
        directory = (
            self.real_dir if chief else os.path.join(workdir, f"tmp_worker_{worker}", "ckpt")
        )
        self.directory = directory
        self.ckpt = trainer.checkpoint()
        self.manager = tf.train.CheckpointManager(self.ckpt, directory, max_to_keep=max_to_keep)

    def _carry_path(self, step: int) -> str:
        return os.path.join(self.real_dir, f"carry-{step}.host{self.worker}.npz")

    def save(self, step: int) -> str:
        # The carry file goes first: a checkpoint never exists without its carry.
        values = self.trainer.carry.local_values(self.trainer.strategy)
        tf.io.gfile.makedirs(self.real_dir)
        tmp = self._carry_path(step) + ".tmp"
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(encode_arrays(values))
        tf.io.gfile.rename(tmp, self._carry_path(step), overwrite=True)
        path = self.manager.save(checkpoint_number=step)
        self._prune_carry_files(step)
        if not self.chief:
            tf.io.gfile.rmtree(os.path.dirname(self.directory))
            return ""
        logging.info("Saved checkpoint %s", path)
        return path

    def _prune_carry_files(self, current: int) -> None:
        """Deletes carry files of checkpoints the manager dropped (never the one just written: on
        non-chief workers the chief's checkpoint list may not show the current step yet)."""
        keep = {int(re.search(r"ckpt-(\d+)$", p).group(1)) for p in self._real_checkpoints()}
        keep.add(current)
        for path in tf.io.gfile.glob(os.path.join(self.real_dir, f"carry-*.host{self.worker}.npz")):
            step = int(re.search(r"carry-(\d+)\.", os.path.basename(path)).group(1))
            if step < current and step not in keep:
                tf.io.gfile.remove(path)

    def _real_checkpoints(self) -> list[str]:
        state = tf.train.get_checkpoint_state(self.real_dir)
        return list(state.all_model_checkpoint_paths) if state else []

    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.real_dir)

    def restore_latest(self) -> int:
        """Restores the newest checkpoint (if any) and its carry; returns the restored step (0 if none)."""
        path = self.latest()
        if not path:
            return 0
        self.ckpt.restore(path).assert_existing_objects_matched()
        step = int(self.trainer.step.numpy())
        carry_path = self._carry_path(step)
        if tf.io.gfile.exists(carry_path):
            with tf.io.gfile.GFile(carry_path, "rb") as f:
                values = decode_arrays(f.read())
            try:
                self.trainer.carry.load_local_values(self.trainer.strategy, values)
            except ValueError as e:
                logging.warning("Carry not restored (%s); starting from a fresh carry.", e)
        else:
            logging.warning("No carry file %s; resuming with a fresh ACT carry.", carry_path)
        logging.info("Restored %s (step %d)", path, step)
        return step


def average_checkpoint_weights(model, paths: list[str]) -> list[np.ndarray]:
    """Mean of the model's trainable weights over the checkpoints `paths` (SWA-style averaging, E4.4).

    The live weights are restored afterwards; returns the averages in `model.trainable_variables` order.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    live = [v.numpy() for v in model.trainable_variables]
    total = [np.zeros_like(w, dtype=np.float64) for w in live]
    try:
        for path in paths:
            tf.train.Checkpoint(model=model).restore(path).expect_partial()
            for t, v in zip(total, model.trainable_variables):
                t += v.numpy()
    finally:
        for v, w in zip(model.trainable_variables, live):
            v.assign(w)
    return [(t / len(paths)).astype(w.dtype) for t, w in zip(total, live)]
