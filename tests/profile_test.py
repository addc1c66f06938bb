"""The profiler window as TensorBoard's Profile tab reads it: the Overview page's step-time graph and the
input-pipeline analysis find the window's steps (xprof's step analysis, not only a trace file on disk).

xprof groups a trace into steps by the `Trace("train", step_num=k, _r=1)` markers of the host, unless the
trace holds iterations of a TF while loop: then it takes those iterations as the steps and ignores the
markers (and the iterations of a compiled `tf.range` loop carry no marker, so the pages say "No step
marker observed"). The window therefore runs single-step calls, one marker each.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.testing.launch import small_config
from tests.testing.tiny_datasets import build_tiny_sudoku
from trm_tf import train
from trm_tf.data import input_pipeline
from trm_tf.trainer import Trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    build_tiny_sudoku(d)
    return d


def tool_data(workdir: str, tool: str) -> list:
    """The JSON TensorBoard's Profile tab serves for `tool` ("overview_page", "input_pipeline_analyzer")
    of the run's one profile, converted by the same xprof function the plugin's data route calls."""
    from xprof.convert import raw_to_tool_data

    paths = tf.io.gfile.glob(os.path.join(workdir, "plugins", "profile", "*", "*.xplane.pb"))
    assert len(paths) == 1, paths
    data, content_type = raw_to_tool_data.xspace_to_tool_data(
        paths, tool, {"use_saved_result": False}
    )
    assert content_type == "application/json" and data, (tool, data)
    return json.loads(data)


def step_table(tables: list) -> tuple[dict, list[dict]]:
    """(properties, rows) of the step-time table (the Overview's step-time graph and its breakdown):
    each row as {column id: value}."""
    (table,) = [t for t in tables if any(c.get("id") == "stepTimeMs" for c in t.get("cols", []))]
    ids = [c["id"] for c in table["cols"]]
    return table["p"], [dict(zip(ids, [c.get("v") for c in r["c"]])) for r in table["rows"]]


@pytest.mark.slow  # a short training run with a profiler window, then xprof's conversion
def test_profiler_window_steps_reach_the_overview_page(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    # The window starts after 4 steps: step 5 compiles its single step, steps 6-8 are traced; loops of the
    # compiled `tf.range` loop run before (steps 1-4) and after it (9-10).
    c = small_config(data_dir, total_steps=10, profile_start_step=4, profile_num_steps=3)
    train.run(c, workdir, tf.distribute.get_strategy(), mode="train")

    props, rows = step_table(tool_data(workdir, "overview_page"))
    # One row per profiled step, named by its marker and the optimizer step it completes.
    assert [r["stepnum"] for r in rows] == ["train 6", "train 7", "train 8"], rows
    times = [r["stepTimeMs"] for r in rows]
    assert min(times) > 0, rows
    # No traced step holds the single step's tracing and compilation (75x a step here when it did).
    assert max(times) < 10 * min(times), times
    # The breakdown covers the step: on a CPU host, mostly host compute.
    for r in rows:
        parts = sum(v for k, v in r.items() if k.endswith("TimeMs") and k != "stepTimeMs")
        assert parts == pytest.approx(r["stepTimeMs"], rel=0.02), r
        assert r["hostComputeTimeMs"] > 0, r
    assert float(props["steptime_ms_average"]) > 0
    assert "No step time measured" not in props["input_conclusion"]

    props, rows = step_table(tool_data(workdir, "input_pipeline_analyzer"))
    assert [r["stepnum"] for r in rows] == ["train 6", "train 7", "train 8"]
    assert float(props["steptime_ms_average"]) > 0


def _weights(trainer):
    out = {f"w{i}": v.numpy() for i, v in enumerate(trainer.model.trainable_variables)}
    out.update({f"ema/{i}": s.numpy() for i, s in enumerate(trainer.ema.shadows)})
    out["puzzle_emb"] = trainer.model.puzzle_emb.numpy()
    return out


@pytest.mark.slow  # trains the same 6 steps twice
def test_single_step_calls_train_like_the_loop(data_dir):
    """The window's single-step calls are the loop's steps: same weights, EMA, counter and metric sums."""
    from trm_tf.data import datasets

    c = small_config(data_dir)
    spec = datasets.load_spec("sudoku_extreme/pipeline_test", data_dir)
    strategy = tf.distribute.get_strategy()
    results = []
    for marked in (False, True):
        trainer = Trainer(c, strategy, spec, total_steps=12)
        it = iter(input_pipeline.distribute_train(strategy, spec, trainer.global_batch, c.seed))
        trainer.train_loop(it, 2)
        if marked:
            trainer.train_steps_marked(it, 2, 3)
        else:
            trainer.train_loop(it, 3)
        trainer.train_loop(it, 1)
        assert int(trainer.step.numpy()) == 6
        results.append((_weights(trainer), trainer.read_metrics(6)))
    (wa, ma), (wb, mb) = results
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert ma == mb


class _Recorder:
    """A trainer stand-in that records `train_steps_marked` calls as ("steps", start, num_steps) in `log`."""

    def __init__(self, log):
        self.log = log

    def train_steps_marked(self, iterator, start, num_steps):
        self.log.append(("steps", start, num_steps))


def test_window_compiles_with_its_first_step_then_traces_the_rest(tmp_path, monkeypatch):
    from trm_tf.actions import ProfileWindow

    log = []
    monkeypatch.setattr(tf.profiler.experimental, "start", lambda d: log.append(("start", d)))
    monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: log.append(("stop",)))
    window = ProfileWindow(4, 3, str(tmp_path), [], enabled=True)
    assert not window.due(3) and window.due(4)
    window.run(_Recorder(log), None, 4, 4, steps_per_s=10.0)
    # Step 5 alone, untraced (it builds the single step), then steps 6-8 inside the trace.
    assert log == [("steps", 4, 1), ("start", str(tmp_path)), ("steps", 5, 3), ("stop",)]
    assert not window.due(8)  # one window per run
    # A worker that does not trace runs the same calls (collectives stay in step), without a trace.
    other = []
    ProfileWindow(4, 3, str(tmp_path), [], enabled=False).run(_Recorder(other), None, 4, 4, 10.0)
    assert other == [("steps", 4, 1), ("steps", 5, 3)]
