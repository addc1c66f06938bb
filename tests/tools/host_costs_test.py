"""The host-cost instrument: exact counts of storage calls and fetches, delays, phases."""

import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from trm_tf import checkpointing, trainer
from trm_tf.tools import host_costs


def _kinds(counts):
    return counts["by_kind"]


def test_counts_a_known_sequence_of_storage_calls_exactly(tmp_path):
    d = str(tmp_path / "a" / "b")
    with host_costs.Recorder() as rec:
        tf.io.gfile.makedirs(d)  # makedirs
        with tf.io.gfile.GFile(
            os.path.join(d, "x.txt"), "w"
        ) as f:  # open (one, however many writes)
            f.write("hello\n")
            f.write("world\n")
        assert tf.io.gfile.exists(os.path.join(d, "x.txt"))  # exists
        with tf.io.gfile.GFile(os.path.join(d, "x.txt")) as f:  # open
            assert f.read() == "hello\nworld\n"  # stat (a whole-file read asks the size first)
        assert len(tf.io.gfile.glob(os.path.join(d, "*.txt"))) == 1  # glob
        tf.io.gfile.rename(os.path.join(d, "x.txt"), os.path.join(d, "y.txt"))  # rename
        tf.io.gfile.copy(os.path.join(d, "y.txt"), os.path.join(d, "z.txt"))  # copy
        assert sorted(tf.io.gfile.listdir(d)) == ["y.txt", "z.txt"]  # listdir
        assert tf.io.gfile.isdir(d)  # isdir
        assert tf.io.gfile.stat(os.path.join(d, "y.txt")).length == 12  # stat
        tf.io.gfile.remove(os.path.join(d, "z.txt"))  # remove
        tf.io.gfile.rmtree(str(tmp_path / "a"))  # rmtree
        t = threading.Thread(target=tf.io.gfile.exists, args=(d,))  # exists, another thread
        t.start()
        t.join()
    # uninstalled: nothing more is counted
    tf.io.gfile.exists(d)
    counts = rec.summarize()["phases"]["startup"]
    assert counts["storage_main"] == 13, counts["by_kind"]
    assert counts["storage_other"] == 1
    assert counts["io_main"] == 3  # two writes and one read, buffered
    assert _kinds(counts) == {
        "storage:copy": 1,
        "storage:exists": 1,
        "storage:exists@other": 1,
        "storage:glob": 1,
        "storage:isdir": 1,
        "storage:listdir": 1,
        "storage:makedirs": 1,
        "storage:open": 2,
        "storage:remove": 1,
        "storage:rename": 1,
        "storage:rmtree": 1,
        "storage:stat": 2,
    }
    here = "storage@tests/tools/host_costs_test.py:"
    assert {k: v for k, v in counts["by_site"].items() if not k.startswith(here)} == {
        "storage@?": 1
    }


def test_counts_fetches_of_every_kind_once():
    x = tf.constant([1.0, 2.0])
    s = tf.constant(3)
    v = tf.Variable(2.0)
    with host_costs.Recorder() as rec:
        x.numpy()
        float(s)
        int(s)
        np.asarray(x)
        np.stack([x, x])  # two
        v.numpy()
        f"{s}"  # noqa: B018  (formatting fetches too)
        y = x * 2  # no fetch: stays on the device
    assert y.shape == (2,)
    counts = rec.summarize()["phases"]["startup"]
    assert counts["fetch_main"] == 6 + 2 and counts["storage_main"] == 0


def test_delays_are_applied_in_the_calling_thread(tmp_path):
    p = str(tmp_path / "f")
    with tf.io.gfile.GFile(p, "w") as f:
        f.write("x")
    x = tf.constant(1.0)
    with host_costs.Recorder(storage_ms=60, rename_ms=150, fetch_ms=40) as rec:
        t0 = time.perf_counter()
        tf.io.gfile.exists(p)
        tf.io.gfile.exists(p)
        t1 = time.perf_counter()
        tf.io.gfile.rename(p, p + "2")
        t2 = time.perf_counter()
        float(x)
        t3 = time.perf_counter()
        other = threading.Thread(target=tf.io.gfile.exists, args=(p,))
        other.start()
        other.join()
        t4 = time.perf_counter()
    assert 0.12 <= t1 - t0 < 2.0  # (upper bounds: loose, the machine is shared)
    assert 0.15 <= t2 - t1 < 2.0
    assert 0.04 <= t3 - t2 < 2.0
    assert t4 - t3 >= 0.06
    assert rec.summarize()["delays_ms"] == {"storage": 60.0, "rename": 150.0, "fetch": 40.0}


def test_phases_boundaries_and_eval_batches(monkeypatch, tmp_path):
    """Fake loops, evaluation and checkpoint (the instrument wraps whatever the classes hold) attribute
    each call to its phase, its loop boundary and its evaluation batch."""
    step = tf.function(lambda: tf.constant(1.0))
    swap = tf.function(lambda: tf.constant(0.0))
    fetched = tf.constant(5.0)

    def train_loop(self, iterator, num_steps):
        float(fetched)  # the loop's Python before its compiled call: counts for the boundary
        step()

    def evaluate(self, dist_dataset, num_steps, use_ema=True, on_batch=None, evaluators=None):
        swap()  # a second compiled function, called twice: not the eval step
        float(fetched)
        for _ in range(num_steps):
            step()
            float(fetched)
            float(fetched)
        swap()
        return {}

    def save(self, step_):
        tf.io.gfile.makedirs(str(tmp_path / "ckpt"))
        return ""

    monkeypatch.setattr(trainer.Trainer, "train_loop", train_loop)
    monkeypatch.setattr(trainer.Trainer, "evaluate", evaluate)
    monkeypatch.setattr(checkpointing.CheckpointIO, "save", save)
    t = object.__new__(trainer.Trainer)
    ck = object.__new__(checkpointing.CheckpointIO)
    with host_costs.Recorder() as rec:
        tf.io.gfile.exists(str(tmp_path))  # startup
        t.train_loop(None, 2)
        float(fetched)  # boundary 1 (plain)
        tf.io.gfile.exists(str(tmp_path))
        bg = threading.Thread(target=tf.io.gfile.exists, args=(str(tmp_path),))
        bg.start()
        bg.join()
        t.train_loop(None, 2)
        float(fetched)  # boundary 2: evaluation and checkpoint
        t.evaluate(None, 3)
        ck.save(4)
        t.train_loop(None, 2)
        float(fetched)  # after the last loop
    assert trainer.Trainer.train_loop is train_loop  # uninstalled
    r = rec.summarize()
    assert r["phases"]["startup"]["storage_main"] == 1
    assert r["phases"]["loop"]["fetch_main"] == 3
    assert r["phases"]["eval"]["fetch_main"] == 7
    assert r["phases"]["checkpoint"]["storage_main"] == 1
    assert r["phases"]["between"]["fetch_main"] == 3
    loops = r["loops"]
    assert loops["count"] == 3 and len(loops["compute_s"]) == 3
    b1, b2 = loops["boundaries"]
    assert (
        b1["plain"]
        and b1["fetch_main"] == 2
        and b1["storage_main"] == 1
        and b1["storage_other"] == 1
    )
    assert not b2["plain"] and b2["with"] == ["checkpoint", "eval"]
    assert b2["fetch_main"] == 1 + 7 + 1 and b2["storage_main"] == 1
    assert loops["plain_boundaries"] == 1 and loops["per_plain_boundary"]["fetch_main"] == 2
    assert all(b["host_s"] > 0 for b in (b1, b2))
    (ev,) = r["evals"]["evaluations"]
    assert ev["num_steps"] == 3 and ev["batches"] == 3
    assert ev["setup"]["fetch_main"] == 1
    assert ev["per_batch"]["fetch_main"] == 2 and ev["max_per_batch"]["fetch_main"] == 2
    assert ev["last_batch_and_results"]["fetch_main"] == 2
    assert ev["total"]["fetch_main"] == 7
    assert len(ev["host_per_batch_s"]) == 3


def test_command_line_needs_the_separator(capsys):
    assert host_costs.main(["--report=x.json"]) == 1
    assert "usage" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _nothing_left_installed():
    yield
    assert not hasattr(tf.io.gfile.exists, "_host_costs_original")


@pytest.mark.slow
def test_the_documented_module_form_counts_a_real_run(tmp_path):
    """`python -m trm_tf.tools.host_costs --report=… -- <launch.py flags>` (BUILD.md, this module's
    docstring) on a tiny CPU run: the report counts its loops and evaluation batches, and the budgets hold
    on the default strategy too (one fetch per plain loop boundary and per eval batch, no main-thread
    storage call between loops)."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.testing.launch import REPO, launch_cmd  # noqa: PLC0415
    from tests.testing.tiny_datasets import build_tiny_sudoku  # noqa: PLC0415

    data_dir = str(tmp_path / "tfds")
    build_tiny_sudoku(data_dir)
    report = tmp_path / "costs.json"
    flags = launch_cmd(
        data_dir,
        str(tmp_path / "run"),
        "--config.train.total_steps=16",
        "--config.train.eval_every_steps=8",
        "--config.train.checkpoint_every_steps=8",  # the boundaries at 4 and 12 are plain
    )[2:]  # launch.py's flags, without `python launch.py`
    cmd = [sys.executable, "-m", "trm_tf.tools.host_costs", f"--report={report}", "--", *flags]
    out = subprocess.run(
        cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["loops"]["count"] == 4 and r["loops"]["plain_boundaries"] == 2
    plain = r["loops"]["max_per_plain_boundary"]
    assert plain["fetch_main"] <= 1 and plain["storage_main"] == 0
    assert r["evals"]["count"] >= 2  # the periodic one at step 8 and the final one
    for e in r["evals"]["evaluations"]:
        assert e["batches"] >= 1 and e["max_per_batch"]["fetch_main"] <= 1


def test_copy_tree_keeps_a_ram_run_directory(tmp_path):
    """`--copy_workdir_to`: a run directory on ram:// (gone with the process) copied to a local one."""
    src = f"ram://copy_tree_{os.getpid()}"
    files = {
        "config.json": "{}",
        "checkpoints/checkpoint": "a",
        "arc_votes/step_8/votes.json": "[1]",
    }
    for name, text in files.items():
        tf.io.gfile.makedirs(os.path.dirname(f"{src}/{name}"))
        with tf.io.gfile.GFile(f"{src}/{name}", "w") as f:
            f.write(text)
    host_costs.copy_tree(src + "/", str(tmp_path / "out"))
    copied = {
        os.path.relpath(os.path.join(root, n), tmp_path / "out"): open(os.path.join(root, n)).read()
        for root, _, names in os.walk(tmp_path / "out")
        for n in names
    }
    assert copied == files
