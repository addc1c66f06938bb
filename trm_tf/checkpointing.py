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
BEST_DIR = "best"  # workdir/best: the best checkpoint (`CheckpointIO.save_best`)


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


class CheckpointError(RuntimeError):
    """The workdir has checkpoint files but none can be restored."""


class CheckpointIO:
    """Save/restore of a Trainer's state in `workdir/checkpoints`."""

    def __init__(self, trainer, workdir: str, max_to_keep: int, chief: bool, worker: int):
        self.trainer = trainer
        self.chief = chief
        self.worker = worker
        self.real_dir = os.path.join(workdir, "checkpoints")
        self.best_dir = os.path.join(workdir, BEST_DIR)
        directory = (
            self.real_dir if chief else os.path.join(workdir, f"tmp_worker_{worker}", "ckpt")
        )
        self.directory = directory
        self.ckpt = trainer.checkpoint()
        self.manager = tf.train.CheckpointManager(self.ckpt, directory, max_to_keep=max_to_keep)

    def _carry_path(self, step: int, directory: str | None = None) -> str:
        return os.path.join(directory or self.real_dir, f"carry-{step}.host{self.worker}.npz")

    def _write_carry(self, step: int, directory: str) -> None:
        values = self.trainer.carry.local_values(self.trainer.strategy)
        tf.io.gfile.makedirs(directory)
        path = self._carry_path(step, directory)
        with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
            f.write(encode_arrays(values))
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)

    def save(self, step: int) -> str:
        # The carry file goes first: a checkpoint never exists without its carry.
        self._write_carry(step, self.real_dir)
        path = self.manager.save(checkpoint_number=step)
        self._prune_carry_files(step)
        if not self.chief:
            tf.io.gfile.rmtree(os.path.dirname(self.directory))
            return ""
        logging.info("Saved checkpoint %s", path)
        return path

    # ------------------------------------------------------------------------------------------------
    # The best checkpoint (workdir/best): written on a new best evaluation, never pruned by the manager.

    def save_best(self, step: int) -> str:
        """Writes the current state as `best/ckpt-<step>` with every host's carry, then (chief) deletes the
        previous best. Every worker calls it (non-chief workers write to a scratch directory)."""
        self._write_carry(step, self.best_dir)
        if not self.chief:
            scratch = os.path.join(os.path.dirname(self.directory), "best")
            self.ckpt.write(os.path.join(scratch, f"ckpt-{step}"))
            tf.io.gfile.rmtree(os.path.dirname(self.directory))
            return ""
        path = self.ckpt.write(os.path.join(self.best_dir, f"ckpt-{step}"))
        for old in tf.io.gfile.glob(os.path.join(self.best_dir, "*")):
            m = re.match(r"(?:ckpt|carry)-(\d+)\.", os.path.basename(old))
            if m and int(m.group(1)) != step:
                tf.io.gfile.remove(old)
        logging.info("Saved best checkpoint %s", path)
        return path

    def best_step(self) -> int | None:
        """The step of the best checkpoint in `best/`, or None."""
        steps = [
            int(m.group(1))
            for p in tf.io.gfile.glob(os.path.join(self.best_dir, "ckpt-*.index"))
            if (m := re.search(r"ckpt-(\d+)\.index$", p))
        ]
        return max(steps) if steps else None

    def restore_best(self) -> int:
        """Restores the best checkpoint and its carry; returns its step (CheckpointError when there is
        none or it cannot be read)."""
        step = self.best_step()
        if step is None:
            raise CheckpointError(
                f"{self.best_dir} holds no best checkpoint (written at the first evaluation of a run "
                "with this version; use --checkpoint=last)"
            )
        path = os.path.join(self.best_dir, f"ckpt-{step}")
        problem = self._try_restore(path)
        if problem is not None:
            raise CheckpointError(f"the best checkpoint {path} cannot be restored: {problem}")
        self._restore_carry(step, self.best_dir)
        logging.info("Restored the best checkpoint %s (step %d)", path, step)
        return step

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
        """The newest checkpoint this run can resume from (verified at restore, finite when saved)."""
        return tf.train.latest_checkpoint(self.real_dir)

    def on_disk(self) -> list[int]:
        """Steps of the checkpoints whose files are in the directory, newest first (whatever the
        `checkpoint` state file says: it may name files a user or a crash removed)."""
        steps = []
        for p in tf.io.gfile.glob(os.path.join(self.real_dir, "ckpt-*.index")):
            m = re.search(r"ckpt-(\d+)\.index$", p)
            if m:
                steps.append(int(m.group(1)))
        return sorted(steps, reverse=True)

    def state_is_finite(self) -> bool:
        """Whether every floating-point variable of the checkpoint (model, EMA, optimizer) is finite."""
        t = self.trainer
        variables = list(t.model.variables) + list(getattr(t.optimizer, "variables", []))
        if t.ema is not None:
            variables += list(t.ema.shadows)
        checks = [
            tf.reduce_all(tf.math.is_finite(v.read_value() if hasattr(v, "read_value") else v))
            for v in variables
            if tf.as_dtype(v.dtype).is_floating
        ]
        return bool(tf.reduce_all(tf.stack(checks))) if checks else True

    def _try_restore(self, path: str) -> str | None:
        """Restores `path`; None on success, else why it cannot be used (one line)."""
        try:
            self.ckpt.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            text = getattr(e, "message", None) or str(e)
            return f"{type(e).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"
        if not self.state_is_finite():
            return "it holds non-finite values"
        return None

    def restore_latest(self) -> int:
        """Restores the newest usable checkpoint and its carry; returns its step (0 when there is none).

        Walks back from the newest checkpoint on disk: one that cannot be read (missing or corrupt files,
        say after a crash during a save) or holds non-finite values is skipped with a warning saying why,
        and moved to `checkpoints/skipped/` by the chief so that it can neither be restored nor overwrite
        good ones later. A directory with checkpoint files of which none is usable raises
        CheckpointError instead of silently starting from step 0.
        """
        steps = self.on_disk()
        if not steps:
            return 0
        skipped = []
        for s in steps:
            path = os.path.join(self.real_dir, f"ckpt-{s}")
            problem = self._try_restore(path)
            if problem is None:
                break
            logging.warning("Skipping checkpoint %s: %s", path, problem)
            skipped.append((s, problem))
        else:
            raise CheckpointError(
                f"none of the {len(steps)} checkpoints in {self.real_dir} can be restored (ckpt-{steps[0]}: "
                f"{skipped[0][1]}); if the config changed, use a new --workdir; to start over, move "
                f"{self.real_dir} away"
            )
        if skipped and self.chief:
            self._set_aside([s for s, _ in skipped], path)
        step = int(self.trainer.step.numpy())
        self._restore_carry(step)
        logging.info(
            "Restored %s (step %d)%s",
            path,
            step,
            f"; skipped newer {', '.join(f'ckpt-{s}' for s, _ in skipped)}" if skipped else "",
        )
        return step

    def _set_aside(self, bad_steps: list[int], good_path: str) -> None:
        """Moves unusable checkpoints (and their carry files) to checkpoints/skipped/ and points the
        `checkpoint` state file at the good ones."""
        aside = os.path.join(self.real_dir, "skipped")
        tf.io.gfile.makedirs(aside)
        for s in bad_steps:
            for f in tf.io.gfile.glob(
                os.path.join(self.real_dir, f"ckpt-{s}.*")
            ) + tf.io.gfile.glob(os.path.join(self.real_dir, f"carry-{s}.*")):
                tf.io.gfile.rename(f, os.path.join(aside, os.path.basename(f)), overwrite=True)
        good = [os.path.join(self.real_dir, f"ckpt-{s}") for s in sorted(self.on_disk())]
        tf.compat.v1.train.update_checkpoint_state(
            self.real_dir, good_path, all_model_checkpoint_paths=good
        )
        self.manager = tf.train.CheckpointManager(
            self.ckpt, self.directory, max_to_keep=self.manager._max_to_keep
        )

    def _restore_carry(self, step: int, directory: str | None = None) -> None:
        carry_path = self._carry_path(step, directory)
        if not tf.io.gfile.exists(carry_path):
            logging.warning("No carry file %s; resuming with a fresh ACT carry.", carry_path)
            return
        with tf.io.gfile.GFile(carry_path, "rb") as f:
            values = decode_arrays(f.read())
        try:
            self.trainer.carry.load_local_values(self.trainer.strategy, values)
        except ValueError as e:
            logging.warning("Carry not restored (%s); starting from a fresh carry.", e)


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
