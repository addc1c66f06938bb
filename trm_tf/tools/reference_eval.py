"""Evaluates a reference (PyTorch) checkpoint with this port: `launch.py --mode=eval
--reference_checkpoint=PATH`.

PATH is a `state_dict` as the reference saves it (`.pt`/extension-less torch pickle when torch is
importable, or the same dict as `.npz` / `.safetensors`; keys with or without the `_orig_mod.` and
`model.` prefixes). The architecture comes from the run's config: a state dict carries no
hyperparameters, and the shapes it has are checked against the model the config builds (one line
naming the first differing key and both shapes). The weights go into the model AND into its EMA
shadows, so `eval.use_ema` evaluates them too (not the random initial weights); the puzzle-embedding
table comes from the checkpoint, so the dataset must number its puzzle identifiers as the reference's
builder does. The evaluation is the run's own (`eval.evaluators`: per-step accuracy, and ARC voting for
ARC) on the full test split, written to eval_results.json (as step 0; the run summary names the
checkpoint) with the files the evaluators write (ARC's submission); the workdir's own checkpoints
are neither read nor written.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from trm_tf import distribute
from trm_tf.data import records
from trm_tf.models import interop
from trm_tf.summaries import MetricWriter
from trm_tf.train import Evaluation, build
from trm_tf.trainer import Trainer
from trm_tf.workdir import RunDir


class ReferenceCheckpointError(ValueError):
    """The reference checkpoint is missing, unreadable or does not fit the config's model."""


def load_weights(trainer: Trainer, path: str) -> dict:
    """Loads the state dict at `path` into `trainer.model` and resets the EMA shadows to it.

    Returns interop's load report (`loaded` keys). Raises ReferenceCheckpointError with one line: the
    missing file, or every missing / unexpected / mis-shaped key (with both shapes).
    """
    if not tf.io.gfile.exists(path):
        raise ReferenceCheckpointError(f"--reference_checkpoint {path}: no such file")
    try:
        sd = interop.read_state_dict(path)
    except Exception as e:  # noqa: BLE001  (pickle, header or torch errors: one line with the cause)
        raise ReferenceCheckpointError(f"--reference_checkpoint {path}: unreadable ({e})") from e
    try:
        info = interop.load_reference_state_dict(trainer.model, sd)
    except ValueError as e:
        raise ReferenceCheckpointError(
            f"--reference_checkpoint {path} does not fit the config's model: {e}"
        ) from e
    if trainer.ema is not None:
        trainer.ema.assign_from()
    return info


def run(config, workdir: str, strategy, path: str, rundir: RunDir | None = None) -> dict:
    """Builds the config's model on its dataset, loads `path` into it and evaluates it once (full
    test split, the config's evaluators); returns the metrics, also written to eval_results.json."""
    if not tf.io.gfile.exists(path):  # before the dataset and the model are built
        raise ReferenceCheckpointError(f"--reference_checkpoint {path}: no such file")
    rundir = rundir or RunDir(workdir, writer=distribute.is_chief(strategy))
    spec, _, _, trainer = build(config, strategy)
    info = load_weights(trainer, path)
    logging.info("Loaded %d reference tensors from %s", len(info["loaded"]), path)
    writer = MetricWriter(workdir, enabled=rundir.writer)
    options = records.input_options(config.runtime.input_pipelines)
    evaluate = Evaluation(config, spec, strategy, trainer, rundir, writer, options)
    metrics = evaluate(0, full=True, use_ema=False)  # the EMA holds the same weights anyway
    rundir.update_summary(
        experiment_id=config.experiment_id,
        status="finished",
        reference_checkpoint=path,
        dataset=spec.name,
        num_params=int(trainer.model.num_params()),
    )
    writer.close()
    return metrics
