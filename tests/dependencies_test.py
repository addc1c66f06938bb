"""The package layers only depend one way: configs -> trm_tf -> trm_tf.tasks <- tfds_builders.

Read from the sources (every `import` and `from ... import`, at any depth of a file), so a violation shows
up here before it shows up as an import cycle or as TensorFlow loaded by a tool that should not need it:

* `trm_tf` imports nothing from `configs` (experiment files) or `tests`;
* `trm_tf.tasks` (task maths shared by builders, evaluators and tools) imports only NumPy, the standard
  library and itself, and importing it loads no TensorFlow;
* `tfds_builders` imports only `trm_tf.tasks`, itself and third-party packages;
* `configs` imports only `ml_collections`, the standard library and `configs`;
* of `tests`, test modules and `bench` import only the shared helpers in `tests.testing` (never another test
  module, whose import would also collect or run its module-level set-up), and `tests.testing` imports no
  test module;
* the modules of `trm_tf.data` and of `configs` import each other without a cycle (a function-level import
  counts: it only hides the cycle).
"""

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: pathlib.Path, package: tuple[str, ...] | None = None) -> list[str]:
    """Absolute dotted names imported by a file (relative imports resolved against its package, by
    default the file's folder under the repository)."""
    tree = ast.parse(path.read_text(), str(path))
    if package is None:
        package = path.relative_to(REPO).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module
            names.append(module)
            # `from pkg import sub` may import a submodule: count `pkg.sub` as well.
            names += [f"{module}.{a.name}" for a in node.names if a.name != "*"]
    return names


def python_files(folder: str) -> list[pathlib.Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if "dummy_data" not in p.parts)


def top(name: str) -> str:
    return name.split(".")[0]


def violations(folder: str, allowed) -> dict[str, list[str]]:
    out = {}
    for path in python_files(folder):
        bad = sorted({n for n in imports_of(path) if not allowed(n)})
        if bad:
            out[str(path.relative_to(REPO))] = bad
    return out


def test_imports_are_read_from_the_sources():
    # The reader itself: relative imports resolve to their package, submodule imports are seen.
    names = imports_of(REPO / "tfds_builders" / "maze_hard" / "maze_hard_dataset_builder.py")
    assert "tfds_builders.maze_hard.maze_lib" in names and "tfds_builders.builder_utils" in names
    assert "trm_tf.tasks.grids.inverse_augment" in imports_of(
        REPO / "trm_tf" / "evaluators" / "arc_votes.py"
    )


def test_trm_tf_imports_neither_configs_nor_tests():
    assert violations("trm_tf", lambda n: top(n) not in ("configs", "tests")) == {}


def only_testing_helpers(name: str) -> bool:
    """Of the `tests` package only `tests.testing` (and `tests` itself, as in `from tests import testing`)."""
    return (
        top(name) != "tests"
        or name in ("tests", "tests.testing")
        or name.startswith("tests.testing.")
    )


def tasks_ok(name: str) -> bool:
    return top(name) in STDLIB or top(name) == "numpy" or name.startswith("trm_tf.tasks")


def builders_ok(name: str) -> bool:
    if top(name) in ("configs", "tests"):
        return False
    return top(name) != "trm_tf" or name == "trm_tf" or name.startswith("trm_tf.tasks")


def configs_ok(name: str) -> bool:
    return top(name) in ("configs", "ml_collections") or top(name) in STDLIB


def test_tasks_import_only_numpy_stdlib_and_themselves():
    assert violations("trm_tf/tasks", tasks_ok) == {}


def test_importing_tasks_loads_no_tensorflow():
    code = (
        "import sys, trm_tf.tasks, trm_tf.tasks.arc, trm_tf.tasks.grids, trm_tf.tasks.maze, "
        "trm_tf.tasks.sudoku; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tensorflow_datasets', 'jax', 'torch')))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_builders_import_only_tasks_themselves_and_third_party():
    assert violations("tfds_builders", builders_ok) == {}


def test_configs_import_only_ml_collections_stdlib_and_configs():
    assert violations("configs", configs_ok) == {}


def test_tests_and_bench_import_only_tests_testing():
    files = [
        p
        for folder in ("tests", "bench")
        for p in python_files(folder)
        if p.name.endswith("_test.py") or "testing" in p.parts or folder == "bench"
    ]
    assert len(files) > 30, "the file list is implausibly short"
    bad = {}
    for path in files:
        names = sorted({n for n in imports_of(path) if not only_testing_helpers(n)})
        if names:
            bad[str(path.relative_to(REPO))] = names
    assert bad == {}


@pytest.mark.parametrize(
    "rule, package, source, bad",
    [
        (tasks_ok, ("trm_tf", "tasks"), "import tensorflow as tf\n", "tensorflow"),
        (
            tasks_ok,
            ("trm_tf", "tasks"),
            "def f():\n    from trm_tf import render\n",
            "trm_tf.render",
        ),
        (
            builders_ok,
            ("tfds_builders", "maze_hard"),
            "from trm_tf.data import datasets\n",
            "trm_tf.data",
        ),
        (builders_ok, ("tfds_builders", "maze_hard"), "from ...configs import base\n", "configs"),
        (configs_ok, ("configs",), "import numpy as np\n", "numpy"),
        (
            only_testing_helpers,
            ("bench",),
            "from tests.helpers import build_tiny_sudoku\n",
            "tests.helpers",
        ),
        (
            only_testing_helpers,
            ("tests",),
            "from tests import reference_numpy\n",
            "tests.reference_numpy",
        ),
        (
            only_testing_helpers,
            ("tests", "models"),
            "from ..train_test import small_config\n",
            "tests.train_test",
        ),
    ],
)
def test_each_rule_flags_a_forbidden_import(rule, package, source, bad, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    flagged = [n for n in imports_of(probe, package) if not rule(n)]
    assert bad in flagged
    # ...and passes the same file with the import removed.
    probe.write_text("import json\n")
    assert all(rule(n) for n in imports_of(probe, package))


def module_name(path: pathlib.Path, root: pathlib.Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(files: list[pathlib.Path], root: pathlib.Path = REPO) -> dict[str, set[str]]:
    """{module: the modules among `files` it imports}, at any depth of the file. `from pkg import sub`
    is an edge to the submodule `pkg.sub` when it is one of `files`, else to `pkg`."""
    modules = {module_name(p, root) for p in files}
    graph = {}
    for path in files:
        this = module_name(path, root)
        package = path.relative_to(root).with_suffix("").parts[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else ()
                module = ".".join(base + ((node.module,) if node.module else ()))
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
                targets = subs or [module]
            else:
                continue
            for name in targets:
                parts = name.split(".")
                owner = next(
                    (
                        ".".join(parts[:k])
                        for k in range(len(parts), 0, -1)
                        if ".".join(parts[:k]) in modules
                    ),
                    None,
                )
                if owner is not None and owner != this:
                    edges.add(owner)
        graph[this] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("folder", ["trm_tf/data", "configs"])
def test_no_import_cycle(folder):
    graph = module_graph(python_files(folder))
    assert len(graph) >= 6, "the module list is implausibly short"
    assert cycles(graph) == []


def test_cycle_finder_sees_a_hidden_cycle(tmp_path):
    # a -> b at module level, b -> a inside a function (how configs/args and configs/base used to meet);
    # c imports b's package member `b` by `from pkg import b`, and no cycle runs through it.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import g\n")
    (pkg / "c.py").write_text("from . import b\n")
    graph = module_graph(sorted(pkg.glob("*.py")), tmp_path)
    assert graph["pkg.c"] == {"pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    (pkg / "b.py").write_text("def f():\n    import json\n")
    assert cycles(module_graph(sorted(pkg.glob("*.py")), tmp_path)) == []
