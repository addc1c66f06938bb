"""The tiny run every launch.py test, the pod rehearsal and the host-latency bench start from, as a launch.py
command line and as an in-process config; and the weights a run's last checkpoint holds.

`TINY_RUN` is quickstart's `runlocal` shrunk to a 32-wide model with 2x2 cycles, 3 supervision steps and
batches of 16, on a dataset of `tiny_datasets`. `launch_cmd` and `small_config` describe the same run (on
the tiny Sudoku set, with `SMALL_CADENCE`), so an in-process Trainer and a launch.py subprocess can be
compared weight for weight with `weights_of`. `REHEARSAL_DTYPE` and `ONE_CLIENT_FOUR_PIPELINES` make it the
pod rehearsal and `TINY_ARC` an ARC run. `bench/host_latency.py` counts this run too: benches may import
`tests.testing` (tests/dependencies_test.py), so it builds its command with `tiny_run_flags` rather than
keeping its own copy of the list.
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

from configs import quickstart
from tests.testing.tiny_datasets import TINY_SUDOKU

# The repository root (this file is tests/testing/launch.py); subprocesses run launch.py from here.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_SUDOKU_DATASET = f"sudoku_extreme/{TINY_SUDOKU.name}"

# Config fields of the tiny run, over quickstart's `runlocal` (the dataset is built beforehand).
TINY_RUN = {
    "data.build_if_missing": False,
    "model.hidden_size": 32,
    "model.puzzle_emb_ndim": 32,
    "model.H_cycles": 2,
    "model.L_cycles": 2,
    "act.halt_max_steps": 3,
    "train.global_batch_size": 16,
    "eval.global_batch_size": 16,
    "optim.lr_warmup_steps": 4,
}
# Loops of 4 steps, each logged and checkpointed; periodic evaluations on 16 test rows.
SMALL_CADENCE = {
    "eval.subset_size": 16,
    "train.steps_per_loop": 4,
    "train.log_every_steps": 4,
    "train.checkpoint_every_steps": 4,
}
# The pod rehearsal runs in the TPU's dtype.
REHEARSAL_DTYPE = {"model.forward_dtype": "bfloat16"}
# The pod rehearsal's one client with four input pipelines: MirroredStrategy over 4 logical CPUs, one
# input pipeline per replica (as a pod's client calls the dataset function once per host). XLA:CPU
# compiles bf16 slowly (90 s a launch instead of 56 s); a TPU compiles the whole program regardless of
# jit_compile, so the pod program's structure is the same either way.
ONE_CLIENT_FOUR_PIPELINES = {
    "runtime.num_logical_cpus": 4,
    "runtime.input_pipelines": "per_replica",
    "runtime.jit_compile": "false",
}
# An ARC run of the tiny model: attention with RoPE (ARC's recipe), one cycle each, two supervision
# steps, the pass@K voting evaluator (datasets: `tiny_datasets.build_tiny_arc`).
TINY_ARC = {
    "eval.evaluators": ("accuracy", "arc"),
    "model.mlp_t": False,
    "model.pos_encodings": "rope",
    "model.H_cycles": 1,
    "model.L_cycles": 1,
    "act.halt_max_steps": 2,
    "optim.puzzle_emb_lr": 1e-2,
}


def overrides(fields: dict) -> list[str]:
    """`--config.section.field=value` flags of `fields` (dotted keys)."""
    return [f"--config.{k}={v}" for k, v in fields.items()]


def tiny_run_flags(data_dir, workdir, dataset=TINY_SUDOKU_DATASET, repo=REPO) -> list[str]:
    """launch.py's flags (without the interpreter and the script) of `TINY_RUN` on `dataset`
    ("name/config", built in data_dir), with checkout `repo`'s config file."""
    name, config = dataset.split("/")
    return [
        "--config=" + os.path.join(repo, "configs", "quickstart.py") + ":runlocal",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        f"--config.data.name={name}",
        f"--config.data.config={config}",
        *overrides(TINY_RUN),
    ]


def tiny_run_cmd(data_dir, workdir, *extra, dataset=TINY_SUDOKU_DATASET) -> list[str]:
    """The argv of a launch.py run of `TINY_RUN` on `dataset`; `extra` flags come last (a field given
    twice takes the last value)."""
    return [
        sys.executable,
        os.path.join(REPO, "launch.py"),
        *tiny_run_flags(data_dir, workdir, dataset),
        *extra,
    ]


def launch_cmd(data_dir, workdir, *extra):
    """The argv of `small_config`'s run through launch.py (the step counts are left to `extra`, e.g.
    `--config.train.total_steps=16`)."""
    return tiny_run_cmd(data_dir, workdir, *overrides(SMALL_CADENCE), *extra)


def small_config(data_dir, **train):
    """`TINY_RUN` with `SMALL_CADENCE` on the tiny Sudoku set in data_dir, 12 steps and an evaluation
    every 8, as an in-process config; `train` overrides fields of `config.train`."""
    c = quickstart.get_config("runlocal")
    c.data.data_dir = data_dir
    c.data.name, c.data.config = TINY_SUDOKU_DATASET.split("/")
    fields = {**TINY_RUN, **SMALL_CADENCE, "train.total_steps": 12, "train.eval_every_steps": 8}
    for key, value in fields.items():
        section, field = key.split(".")
        c[section][field] = value
    for k, v in train.items():
        c.train[k] = v
    return c


def weights_of(workdir):
    """{variable name: array} of the model, EMA and puzzle-embedding variables in the latest checkpoint of
    workdir (optimizer slots and counters left out)."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = [
        n
        for n, _ in tf.train.list_variables(path)
        if n.startswith(("model/", "ema/", "puzzle_emb"))
    ]
    return {n: reader.get_tensor(n) for n in names}


def free_ports(n: int) -> list[int]:
    """`n` loopback ports that were free a moment ago (for TF_CONFIG clusters of local workers)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def worker_env(ports: list[int], index: int, **env) -> dict:
    """The environment of worker `index` of a loopback MultiWorkerMirrored cluster on `ports`: this
    process's, with PYTHONPATH at the repository, TF_CONFIG, and `env` on top."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    return dict(os.environ, PYTHONPATH=REPO, TF_CONFIG=json.dumps(tf_config), **env)
