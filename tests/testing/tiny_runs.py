"""Tiny run directories for the tool tests, written in a second without training or a dataset.

`make_run` leaves what training leaves (config.json, checkpoints/ckpt-N with model, optimizer, EMA shadows
and a step counter) for a 32-wide Sudoku model; the weights are shifted away from the seeded initial ones, so
a model that skipped its restore is caught by comparing values.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from configs import quickstart
from trm_tf.ema import EMA
from trm_tf.models import build_model
from trm_tf.tools import restore
from trm_tf.workdir import RunDir

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
RAW_SHIFT = 0.25  # added to every initial weight before saving
EMA_SHIFT = 0.5  # the EMA shadows are the saved weights plus this


def tiny_config(data_dir: str, **model):
    """quickstart:runlocal at width 32, one H and L cycle, 2 supervision steps; `data_dir` holds no
    dataset, so the tools fall back to Sudoku's dimensions."""
    c = quickstart.get_config("runlocal")
    c.data.data_dir = data_dir
    c.model.hidden_size = 32
    c.model.puzzle_emb_ndim = 32
    c.model.H_cycles, c.model.L_cycles, c.act.halt_max_steps = 1, 1, 2
    for k, v in model.items():
        c.model[k] = v
    return c


def save_checkpoint(directory: str, config, step: int = 1, ema: bool = True, shift: float = 0.0):
    """Writes DIRECTORY/ckpt-STEP for the config's model (weights + RAW_SHIFT + `shift`; EMA shadows
    EMA_SHIFT above them when `ema`); returns (prefix, raw weights, EMA weights or None)."""
    model = build_model(config.model, **restore.model_dims(config))
    for v in model.trainable_variables:
        v.assign_add(tf.fill(v.shape, tf.cast(RAW_SHIFT + shift, v.dtype)))
    # An optimizer next to the model, as in a trainer's checkpoint: it reaches the model's deeper
    # weights by a shorter path, so the checkpoint keys them under optimizer/..., not model/...
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    items = dict(model=model, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64))
    shadows = None
    if ema:
        items["ema"] = EMA(model.trainable_variables, 0.9)
        for s in items["ema"].shadows:
            s.assign_add(tf.fill(s.shape, tf.cast(EMA_SHIFT, s.dtype)))
        shadows = [s.numpy() for s in items["ema"].shadows]
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(**items), directory, max_to_keep=10)
    prefix = manager.save(checkpoint_number=step)
    return prefix, [v.numpy() for v in model.trainable_variables], shadows


def make_run(path: str, config, ema: bool = True, steps=(1,)):
    """A run directory with config.json and one checkpoint per step (step k's weights shifted by k);
    returns {step: (prefix, raw weights, EMA weights or None)}."""
    RunDir(path).write_config(config)
    out = {}
    for s in steps:
        out[s] = save_checkpoint(os.path.join(path, "checkpoints"), config, s, ema, shift=float(s))
    return out


def weights(model) -> list[np.ndarray]:
    return [v.numpy() for v in model.trainable_variables]
