"""The evaluator registry (trm_tf/evaluators/__init__.py): `eval.evaluators` names classes of
`EVALUATORS`, in order; a wrong name, a repeated name or a config an evaluator cannot run with is refused in
one line, also by launch.py before anything is built; every config file names known evaluators."""

import json
import os
import subprocess
import sys

import pytest

from configs import args, catalogue
from tests.testing.config_files import load
from tests.testing.launch import REPO
from trm_tf import evaluators
from trm_tf.evaluators.accuracy import AccuracyEvaluator
from trm_tf.evaluators.arc import ARCEvaluator
from trm_tf.evaluators.base import Evaluator


def _config(names, dataset="sudoku_extreme", **eval_fields):
    c = args.build(None)
    c.data.name = dataset
    c.eval.evaluators = names
    for k, v in eval_fields.items():
        c.eval[k] = v
    return c


def test_registry_maps_each_name_to_its_class():
    assert evaluators.EVALUATORS == {"accuracy": AccuracyEvaluator, "arc": ARCEvaluator}
    for name, cls in evaluators.EVALUATORS.items():
        assert issubclass(cls, Evaluator) and cls.name == name
    evaluators.check_config(_config(("accuracy",)))
    evaluators.check_config(_config(("arc", "accuracy"), "arc_agi"))


@pytest.mark.parametrize(
    "names, dataset, fields, message",
    [
        (
            ("accuracy", "pass_at_k"),
            "sudoku_extreme",
            {},
            r"unknown evaluator 'pass_at_k'; known: ",
        ),
        (("accuracy,arc",), "arc_agi", {}, r"unknown evaluator 'accuracy,arc'.*--config.eval"),
        (("accuracy", "accuracy"), "sudoku_extreme", {}, "names an evaluator twice"),
        (
            ("accuracy", "arc"),
            "sudoku_extreme",
            {},
            "'arc' needs an arc_agi dataset, got data.name",
        ),
        (("arc",), "arc_agi", {"arc_subset_tasks": 0}, "arc_subset_tasks must be -1"),
    ],
)
def test_check_config_refuses_in_one_line(names, dataset, fields, message):
    c = _config(names, dataset, **fields)
    with pytest.raises(ValueError, match=message) as e:
        evaluators.check_config(c)
    assert "\n" not in str(e.value)
    if "unknown" in message:
        assert "['accuracy', 'arc']" in str(e.value)  # the registry's names


def test_every_config_file_names_known_evaluators():
    for run in catalogue.RUNS:
        evaluators.check_config(load(run.config_arg))


def test_launch_refuses_an_unknown_evaluator_before_building_anything(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "--config=configs/quickstart.py:runlocal",
            f"--workdir={tmp_path / 'run'}",
            f"--config.data.data_dir={tmp_path / 'tfds'}",
            "--config.eval.evaluators=('accuracy', 'arcc')",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert "eval.evaluators: unknown evaluator 'arcc'" in out.stderr
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("old, new", [("", ["accuracy"]), ("arc", ["accuracy", "arc"])])
def test_a_stored_config_with_one_evaluator_name_upgrades_to_the_list(old, new, tmp_path):
    """config.json files written when `eval.evaluator` was one name ("" = accuracy, "arc" = accuracy
    and ARC voting): `upgrade_config` gives today's list, as config.json holds it, and the run table
    shows the column of a run written today."""
    from trm_tf.analysis import run_config, runs

    config = load("configs/paper_arc1.py" if old else "configs/quickstart.py")
    today = json.loads(config.to_json_best_effort())
    stored = json.loads(json.dumps(today))
    del stored["eval"]["evaluators"]
    stored["eval"]["evaluator"] = old
    assert run_config.upgrade_config(run_config.flatten_config(stored)) == {
        **run_config.flatten_config(today),
        "eval.evaluators": new,
    }
    (tmp_path / "config.json").write_text(json.dumps(stored))
    row = runs.load_run(str(tmp_path))
    assert (
        row["eval.evaluators"]
        == json.dumps(new)
        == runs.table_columns(run_config.flatten_config(today))["eval.evaluators"]
    )
    assert "eval.evaluator" not in row


class _Reads(Evaluator):
    """A stand-in declaring what it reads, to combine with others."""

    def __init__(self, features=(), task_names=None, periodic_tasks=None):
        self.features, self.task_names, self.periodic_tasks = features, task_names, periodic_tasks

    @classmethod
    def from_config(cls, config, spec, halt_max_steps):
        return cls()

    def begin(self): ...

    def update(self, out): ...

    def reduce(self, strategy): ...

    def result(self):
        return {}


def test_what_several_evaluators_read_is_combined_or_refused():
    a = _Reads(("task_id", "color_map"), ["t1", "t2"], {"t1": 11})
    b = _Reads(("test_index", "task_id"), ["t1", "t2"], {"t1": 11})
    plain = _Reads()
    assert evaluators.device_features([a, plain, b]) == ("task_id", "color_map", "test_index")
    assert evaluators.task_names([plain, a, b]) == ["t1", "t2"]
    assert evaluators.periodic_tasks([plain, a, b]) == {"t1": 11}
    assert evaluators.task_names([plain]) is None and evaluators.periodic_tasks([plain]) is None
    with pytest.raises(ValueError, match="number the tasks of the eval stream differently"):
        evaluators.task_names([a, _Reads(task_names=["t2", "t1"])])
    with pytest.raises(ValueError, match="different task subsets"):
        evaluators.periodic_tasks([a, _Reads(periodic_tasks={"t2": 11})])
