"""Loading a trained model for the tools: the run's config, its newest checkpoint, a verified restore.

A tool gets `--checkpoint=`, one of

* a run directory (its `config.json` gives the config, `checkpoints/` the newest checkpoint);
* a checkpoint prefix (`RUN/checkpoints/ckpt-1500`, `RUN/averaged/ckpt-1`): the config comes from the
  nearest parent directory that holds a `config.json`, else `--config` must give it;
* a reference PyTorch state_dict (`.pt`, `.pth`, `.npz`, `.safetensors`, or a `step_N` file): it carries
  no config, so `--config` must give it.

`config.json` files written before the config had its `act` and `runtime` sections (ACT fields under
`model`, `train.jit_compile`, -1 for "derived") are read in today's layout (`RunDir.read_config` applies
`trm_tf.analysis.run_config.upgrade_config`, as the run tables and a resume do), so a run trained before
the change still loads.

`tf.train.Checkpoint.restore(...).expect_partial()` silently skips every variable the checkpoint lacks,
which leaves a model whose config does not match its checkpoint (attention vs MLP-T, EMA on vs off) on
its random initial weights. `restore` compares the checkpoint's variables with the ones the model would
save, before restoring anything, and raises `RestoreError` with one line naming what is missing or
mis-shaped.
"""

from __future__ import annotations

import collections
import os
import posixpath
import re
import tempfile

import ml_collections
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from trm_tf.workdir import CONFIG, RunDir

# Files `interop.load_reference_state_dict` reads (reference checkpoints; `step_N` is the reference's
# own file name, without a suffix).
REFERENCE_SUFFIXES = (".pt", ".pth", ".npz", ".safetensors")
# How many parent directories of a checkpoint prefix are searched for the run's config.json:
# RUN/checkpoints/ckpt-N and RUN/averaged/ckpt-N are one level below the run.
_PARENT_LEVELS = 2
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHOWN = 4  # names listed in an error line before "... and N more"


class RestoreError(ValueError):
    """A checkpoint or its config cannot be used; the message is one line saying what and why."""


def is_reference_checkpoint(path: str) -> bool:
    """Whether `path` is a reference PyTorch state_dict rather than a TensorFlow checkpoint (or a run
    directory, whose name may start with `step_` as well)."""
    if path.endswith(REFERENCE_SUFFIXES):
        return True
    return (
        os.path.basename(path).startswith("step_")
        and not tf.io.gfile.isdir(path)
        and not tf.io.gfile.exists(path + ".index")
    )


def _parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) if "://" in path else os.path.dirname(path)


def run_dir_of(checkpoint: str) -> str | None:
    """The run directory `checkpoint` belongs to (the nearest of it and its parents with a
    config.json, at most two levels up), or None."""
    path = checkpoint.rstrip("/")
    for _ in range(_PARENT_LEVELS + 1):
        if path and tf.io.gfile.exists(os.path.join(path, CONFIG)):
            return path
        parent = _parent(path)
        if not parent or parent == path:
            break
        path = parent
    return None


def read_run_config(run_dir: str) -> ml_collections.ConfigDict:
    """The config of the run in `run_dir` (from its config.json, in today's layout)."""
    try:
        return RunDir(run_dir, writer=False).read_config()
    except FileNotFoundError as e:
        raise RestoreError(str(e)) from None


def resolve_config(checkpoint: str, override=None) -> ml_collections.ConfigDict:
    """`override` (a `--config`) when given, else the config.json of `checkpoint`'s run directory.

    Raises:
      RestoreError: neither gives a config (a reference state_dict or a checkpoint outside a run).
    """
    if override is not None:
        return override
    run = None if is_reference_checkpoint(checkpoint) else run_dir_of(checkpoint)
    if run is None:
        what = (
            "a reference state_dict" if is_reference_checkpoint(checkpoint) else "no run directory"
        )
        raise RestoreError(
            f"{checkpoint}: {what} with a {CONFIG}; pass --config=CONFIG_FILE to say how the model "
            "was trained"
        )
    return read_run_config(run)


def _newest_prefix(directory: str) -> str | None:
    """The newest `ckpt-N` of a directory without a `checkpoint` state file (`best/` has none)."""
    steps = [
        int(m.group(1))
        for p in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))
        if (m := re.search(r"ckpt-(\d+)\.index$", p))
    ]
    return os.path.join(directory, f"ckpt-{max(steps)}") if steps else None


def checkpoint_prefix(checkpoint: str) -> str:
    """The checkpoint prefix to restore: a run directory's newest one (in `checkpoints/`, else in the
    directory itself), the best one for `RUN_DIR/best` (`trm_tf.best`), or `checkpoint` itself when it
    is a prefix."""
    if tf.io.gfile.isdir(checkpoint):
        path = tf.train.latest_checkpoint(os.path.join(checkpoint, "checkpoints"))
        path = path or tf.train.latest_checkpoint(checkpoint) or _newest_prefix(checkpoint)
        if not path:
            raise RestoreError(f"no checkpoint in {checkpoint} (nor in its checkpoints/)")
        return path
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise RestoreError(f"{checkpoint}: no such checkpoint ({checkpoint}.index does not exist)")
    return checkpoint


def _object_graph(path: str):
    """(the checkpoint's object graph, {checkpoint key: shape})."""
    reader = tf.train.load_checkpoint(path)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    return graph, reader.get_variable_to_shape_map()


def _variable_shape(graph, shapes, node_id: int) -> tuple[int, ...] | None:
    for attr in graph.nodes[node_id].attributes:
        if attr.name == "VARIABLE_VALUE":
            return tuple(shapes[attr.checkpoint_key])
    return None


def _variables_by_path(path: str, roots: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{object path: shape} of every variable reachable from the given root attributes (one path per
    variable, the shortest)."""
    graph, shapes = _object_graph(path)
    queue = collections.deque(
        ((c.local_name,), c.node_id) for c in graph.nodes[0].children if c.local_name in roots
    )
    out, seen = {}, set()
    while queue:
        names, node_id = queue.popleft()
        if node_id in seen:
            continue
        seen.add(node_id)
        shape = _variable_shape(graph, shapes, node_id)
        if shape is not None:
            out[names] = shape
        queue.extend((names + (c.local_name,), c.node_id) for c in graph.nodes[node_id].children)
    return out


def _shape_at(graph, shapes, names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The shape of the variable at object path `names` of a saved graph, None when there is none.

    A variable is saved once, under the shortest path to it (a trainer's checkpoint keys the model's
    deeper weights under `optimizer/...`), but every path to it stays in the object graph, and restore
    follows those paths: so this walks the graph instead of matching checkpoint keys.
    """
    node_id = 0
    for name in names:
        node_id = next(
            (c.node_id for c in graph.nodes[node_id].children if c.local_name == name), None
        )
        if node_id is None:
            return None
    return _variable_shape(graph, shapes, node_id)


def expected_variables(**objects) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{object path: shape} of the variables `tf.train.Checkpoint(**objects)` saves, read from a scratch
    write to a local temporary directory (the paths follow the object graph, which only a write spells
    out)."""
    with tempfile.TemporaryDirectory(prefix="trm_tf_restore_") as scratch:
        written = tf.train.Checkpoint(**objects).write(os.path.join(scratch, "ckpt"))
        return _variables_by_path(written, tuple(objects))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def check_restorable(path: str, **objects) -> None:
    """Raises RestoreError unless checkpoint `path` holds every variable of `objects`, shapes equal.

    Extra variables in the checkpoint (optimizer slots, the step counter) are fine.
    """
    want = expected_variables(**objects)
    graph, shapes = _object_graph(path)
    have = {names: _shape_at(graph, shapes, names) for names in want}
    missing = sorted("/".join(k) for k, shape in have.items() if shape is None)
    if missing and all(k.startswith("ema/") for k in missing):
        raise RestoreError(
            f"{path} holds no EMA weights (ema/...); pass --noema to use its model weights"
        )
    if missing:
        raise RestoreError(
            f"{path} lacks {len(missing)} of the {len(want)} variables the config's model has "
            f"({_listing(missing)}): does the config (--config or the run's {CONFIG}) match it?"
        )
    mis = sorted(
        f"{'/'.join(k)} {list(have[k])} vs {list(want[k])}" for k in want if have[k] != want[k]
    )
    if mis:
        raise RestoreError(
            f"{path}: {len(mis)} variables have other shapes than the config's model "
            f"(checkpoint vs model: {_listing(mis)})"
        )


def restore(path: str, **objects) -> None:
    """Restores `objects` (e.g. model=..., ema=...) from checkpoint `path`, every variable verified."""
    check_restorable(path, **objects)
    # The check above covers every variable of `objects`; the rest of a training checkpoint (optimizer,
    # step, save counter) is not wanted here.
    tf.train.Checkpoint(**objects).restore(path).expect_partial()


def model_dims(config) -> dict:
    """vocab_size, seq_len and num_puzzle_identifiers of the config's dataset (Sudoku's when the
    dataset is not built here)."""
    from trm_tf.data import datasets
    from trm_tf.tasks import sudoku

    try:
        spec = datasets.load_spec(f"{config.data.name}/{config.data.config}", config.data.data_dir)
    except datasets.DatasetMissingError:
        return dict(vocab_size=sudoku.VOCAB_SIZE, seq_len=sudoku.SEQ_LEN, num_puzzle_identifiers=1)
    return dict(
        vocab_size=spec.vocab_size,
        seq_len=spec.seq_len,
        num_puzzle_identifiers=spec.num_puzzle_identifiers,
    )


def load_model(config, checkpoint: str, use_ema: bool = True):
    """Builds the config's model and loads weights from a run dir, checkpoint prefix or state_dict.

    With `use_ema` and a config that trains with EMA (`optim.ema`), the EMA weights replace the raw
    ones, as evaluation does; the checkpoint must then hold them.

    Raises:
      RestoreError: no checkpoint there, or it does not hold every variable the model needs.
    """
    from trm_tf.ema import EMA
    from trm_tf.models import build_model, interop
    from trm_tf.trainer import resolve_forward_dtype

    resolve_forward_dtype(config, tf.distribute.get_strategy())  # a config file's "auto"
    model = build_model(config.model, **model_dims(config))
    if is_reference_checkpoint(checkpoint):
        interop.load_reference_state_dict(model, checkpoint)
        return model
    path = checkpoint_prefix(checkpoint)
    items = dict(model=model)
    if use_ema and config.optim.ema:
        items["ema"] = EMA(model.trainable_variables, config.optim.ema_rate)
    restore(path, **items)
    if "ema" in items:
        items["ema"].copy_to(model.trainable_variables)
    logging.info("Loaded %s%s", path, " (EMA weights)" if "ema" in items else "")
    return model
