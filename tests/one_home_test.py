"""One home per name: every name is imported from the module that defines it, and has one name.

Read from the sources (every file of the repository's Python packages, scripts and tests):

* `from pkg.mod import name` and `mod.name` (with `mod` an imported module of the repository) must find
  `name` defined in `pkg/mod.py` by a `def`, `class` or assignment. A name `mod` itself only imports is a
  re-export: a second import path of a name defined elsewhere (`from trm_tf.act import CarryState` when
  the class lives in `trm_tf/carry.py`). Submodules (`from trm_tf.data import records`) are their own home.
* Outside the test files, no module binds a second public name to a name it imports (`augment_grid =
  augment`).
"""

from __future__ import annotations

import ast
import os

from tests.testing.repository import ROOT, repository_files

# Top-level folders and files whose Python the check reads.
SOURCES = ("trm_tf", "tfds_builders", "configs", "tests", "bench", "scripts")


def _module_name(rel: str) -> str:
    parts = rel[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Module:
    """What one module binds at its top level: defined names and imported ones (name -> (module, name);
    name None for a module imported as a whole)."""

    def __init__(self, rel: str, tree: ast.Module):
        self.rel, self.tree = rel, tree
        self.name = _module_name(rel)
        self.is_package = rel.endswith("__init__.py")
        self.defined: set[str] = set()
        self.imported: dict[str, tuple[str, str | None]] = {}
        self.aliases: list[tuple[int, str, str]] = []  # (line, new name, imported name)
        self._read(tree.body)

    def resolve(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _read(self, body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if not isinstance(node, ast.With)
                    else [i.optional_vars for i in node.items if i.optional_vars]
                )
                for t in targets:
                    self.defined |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            self.aliases.append((node.lineno, t.id, node.value.id))
                if isinstance(node, (ast.For, ast.With)):
                    self._read(node.body)
            elif isinstance(node, ast.ImportFrom):
                source = self.resolve(node)
                for a in node.names:
                    self.imported[a.asname or a.name] = (source, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    self.imported[a.asname or a.name.split(".")[0]] = (
                        (a.name, None) if a.asname else (a.name.split(".")[0], None)
                    )
            elif isinstance(node, (ast.If, ast.Try)):
                self._read(node.body + node.orelse)
                for handler in getattr(node, "handlers", []):
                    self._read(handler.body)
                self._read(getattr(node, "finalbody", []))


def _parse(root: str, files) -> dict[str, _Module]:
    modules = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            m = _Module(rel, ast.parse(f.read(), rel))
        modules[m.name] = m
    return modules


def _imports_only(modules: dict[str, _Module], module: str, name: str) -> str | None:
    """Where `module.name` comes from when `module` imports it without defining it (else None)."""
    m = modules.get(module)
    if m is None or f"{module}.{name}" in modules or name in m.defined or name not in m.imported:
        return None
    source, original = m.imported[name]
    return source if original is None else f"{source}.{original}"


def second_homes(root: str, files) -> list[str]:
    """'<file>:<line>: ...' for every name reached through a module that does not define it, and every
    second public name a non-test module binds to an imported name."""
    modules = _parse(root, files)
    out = set()
    for m in modules.values():
        local_modules: dict[str, str] = {}  # local name -> repository module it stands for
        nodes = list(ast.walk(m.tree))
        for node in nodes:
            if isinstance(node, ast.ImportFrom):
                source = m.resolve(node)
                for a in node.names:
                    if f"{source}.{a.name}" in modules:
                        local_modules[a.asname or a.name] = f"{source}.{a.name}"
                    elif (home := _imports_only(modules, source, a.name)) is not None:
                        out.add(f"{m.rel}:{node.lineno}: {source}.{a.name} is {home}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules:
                        local_modules[a.asname or a.name.split(".")[0]] = (
                            a.name if a.asname else a.name.split(".")[0]
                        )
        for node in nodes:
            if not isinstance(node, ast.Attribute):
                continue
            chain, value = [], node
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if not (isinstance(value, ast.Name) and value.id in local_modules):
                continue
            module, i = local_modules[value.id], 0
            while i < len(chain) - 1 and f"{module}.{chain[i]}" in modules:
                module, i = f"{module}.{chain[i]}", i + 1
            if (home := _imports_only(modules, module, chain[i])) is not None:
                out.add(f"{m.rel}:{node.lineno}: {module}.{chain[i]} is {home}")
        if not os.path.basename(m.rel).endswith("_test.py"):
            for line, new, old in m.aliases:
                if not new.startswith("_") and old in m.imported:
                    out.add(f"{m.rel}:{line}: {new} is a second name of {old}")
    return sorted(out)


def _python_files() -> list[str]:
    return [
        f
        for f in repository_files()
        if f.endswith(".py")
        and (f.split("/")[0] in SOURCES or "/" not in f)
        and "dummy_data" not in f.split("/")
    ]


def test_second_homes_are_caught(tmp_path):
    sources = {
        "pkg/__init__.py": "",
        "pkg/home.py": "def f():\n    return 1\n\n\nK = 2\n",
        "pkg/user.py": "from pkg.home import K, f\n\nalias = f\n_private = f\n\n\ndef g():\n"
        "    return f() + K\n",
        "pkg/reader.py": "from pkg import home, user\nfrom pkg.user import f\nfrom pkg.user import g\n\n"
        "x = home.f() + user.K + user.g()\n",
        "pkg/reader_test.py": "import pkg.user as u\nfrom pkg.home import f\n\nsame = f\ny = u.f\n",
    }
    for rel, text in sources.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert second_homes(str(tmp_path), sorted(sources)) == [
        "pkg/reader.py:2: pkg.user.f is pkg.home.f",
        "pkg/reader.py:5: pkg.user.K is pkg.home.K",
        "pkg/reader_test.py:5: pkg.user.f is pkg.home.f",
        "pkg/user.py:3: alias is a second name of f",
    ]


def test_every_name_is_imported_from_its_home():
    files = _python_files()
    assert "trm_tf/act.py" in files and "launch.py" in files and "tests/one_home_test.py" in files
    found = second_homes(ROOT, files)
    assert not found, "import each name from the module that defines it:\n" + "\n".join(found)
