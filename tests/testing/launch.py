"""Small trainer runs for tests: the repository root, a tiny in-process config and the matching launch.py
command line, and the weights a run's last checkpoint holds.

`small_config` and `launch_cmd` describe the same run (quickstart's `runlocal` shrunk to a 32-wide model on
the tiny Sudoku set of `tiny_datasets.build_tiny_sudoku`), so an in-process Trainer and a launch.py
subprocess can be compared weight for weight with `weights_of`.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf

from configs import quickstart

# The repository root (this file is tests/testing/launch.py); subprocesses run launch.py from here.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_config(data_dir, **train):
    """Quickstart's `runlocal` config on the tiny Sudoku set in data_dir, with a 32-wide 2x2-cycle model,
    batches of 16 and 12 steps; `train` overrides fields of `config.train`."""
    c = quickstart.get_config("runlocal")
    c.data.data_dir = data_dir
    c.data.config = "pipeline_test"
    c.data.build_if_missing = False
    c.model.hidden_size = 32
    c.model.puzzle_emb_ndim = 32
    c.model.H_cycles, c.model.L_cycles, c.act.halt_max_steps = 2, 2, 3
    c.train.global_batch_size = 16
    c.eval.global_batch_size = 16
    c.eval.subset_size = 16
    c.train.total_steps = 12
    c.train.steps_per_loop = 4
    c.train.log_every_steps = 4
    c.train.eval_every_steps = 8
    c.train.checkpoint_every_steps = 4
    c.optim.lr_warmup_steps = 4
    for k, v in train.items():
        c.train[k] = v
    return c


def launch_cmd(data_dir, workdir, *extra):
    """The argv of a launch.py run with the model and batch sizes of `small_config` (the step counts are
    left to `extra`, e.g. `--config.train.total_steps=16`)."""
    return [
        sys.executable,
        os.path.join(REPO, "launch.py"),
        "--config=" + os.path.join(REPO, "configs", "quickstart.py") + ":runlocal",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.data.config=pipeline_test",
        "--config.data.build_if_missing=False",
        "--config.model.hidden_size=32",
        "--config.model.puzzle_emb_ndim=32",
        "--config.model.H_cycles=2",
        "--config.model.L_cycles=2",
        "--config.act.halt_max_steps=3",
        "--config.train.global_batch_size=16",
        "--config.eval.global_batch_size=16",
        "--config.eval.subset_size=16",
        "--config.train.steps_per_loop=4",
        "--config.train.log_every_steps=4",
        "--config.train.checkpoint_every_steps=4",
        "--config.optim.lr_warmup_steps=4",
        *extra,
    ]


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
