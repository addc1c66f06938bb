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
    # Steps 5-7 traced (after step 4); step 4 builds their single step; loops of the compiled
    # `tf.range` loop run before (steps 1-3) and after the window (8-10).
    c = small_config(data_dir, total_steps=10, profile_start_step=4, profile_num_steps=3)
    train.run(c, workdir, tf.distribute.get_strategy(), mode="train")

    props, rows = step_table(tool_data(workdir, "overview_page"))
    # One row per profiled step, named by its marker and the optimizer step it completes.
    assert [r["stepnum"] for r in rows] == ["train 5", "train 6", "train 7"], rows
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
    assert [r["stepnum"] for r in rows] == ["train 5", "train 6", "train 7"]
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


def test_window_builds_with_the_step_before_then_traces_the_configured_steps(tmp_path, monkeypatch):
    from trm_tf.actions import ProfileWindow

    log = []
    monkeypatch.setattr(tf.profiler.experimental, "start", lambda d: log.append(("start", d)))
    monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: log.append(("stop",)))
    # profile_start_step=4, profile_num_steps=3: steps 5-7 traced, step 4 builds the single step.
    window = ProfileWindow(4, 3, str(tmp_path), [], enabled=True)
    assert not window.due(2) and window.due(3) and window.start == 3
    window.run(_Recorder(log), None, 3, 4, steps_per_s=10.0)
    assert log == [("steps", 3, 1), ("start", str(tmp_path)), ("steps", 4, 3), ("stop",)]
    assert not window.due(8)  # one window per run
    # A worker that does not trace runs the same calls (collectives stay in step), without a trace.
    other = []
    ProfileWindow(4, 3, str(tmp_path), [], enabled=False).run(_Recorder(other), None, 3, 4, 10.0)
    assert other == [("steps", 3, 1), ("steps", 4, 3)]
    # A curriculum stage starting at step 4: the build at step 3 is the old stage's; the window builds
    # the new stage's single step at step 4 and traces steps 6-8.
    log.clear()
    window = ProfileWindow(4, 3, str(tmp_path), [], enabled=True)
    window.run(_Recorder(log), None, 3, 1, 10.0)
    assert log == [("steps", 3, 1)] and window.due(4) and not window.due(3)
    window.run(_Recorder(log), None, 4, 4, 10.0)
    assert log[1:] == [("steps", 4, 1), ("start", str(tmp_path)), ("steps", 5, 3), ("stop",)]
    assert ProfileWindow(0, 2, str(tmp_path), [], enabled=True).start == 0  # no step before step 0
    assert ProfileWindow(-1, 2, str(tmp_path), [], enabled=True).start == -1
