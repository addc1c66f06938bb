"""Every repository path and `trm_tf` module the markdown files name exists.

A path is a word (in `inline code` or in the prose) with a slash whose first folder is a top-level entry
of the repository (`trm_tf/act.py`, `configs/`, `tests/fixtures/config_v1/`, optionally followed by
`:NAME` or `#anchor`) or a sibling of the markdown file (`dummy_data/` in a builder's README);
`configs/validation.validate` names a name of a module, which must be defined there. A dotted name
`trm_tf.a.b` must be a module or package of the repository, optionally followed by a name defined in
that module (a function, class or assignment, not an import: the docs cite a name where it lives) and,
for a class, one of its attributes (`trm_tf.workdir.RunDir.check_config`).

Patterns are not paths: a word with `<...>`, `*`, `{...}`, `...` or `…` in it (a cut docstring), or with a
placeholder in capitals (`tfds_builders/NAME`, `configs/X.py`). Fenced code blocks are commands, run by
`tests/scripts/documented_commands_test.py`, and may name files those commands write.

Also what README.md and docs/layout.md say of the tests' names: a test file named after a Python module
of the repository sits on that module's path (`tests/data/cache_test.py` for `trm_tf/data/cache.py`).
"""

from __future__ import annotations

import ast
import functools
import os
import re

from tests.testing.repository import ROOT, repository_files

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
# A slash-separated word (no scheme such as gs://, no $VAR or ~ prefix; a sentence's full stop is not
# part of it), or a dotted trm_tf name.
PATH = re.compile(r"(?<![\w.:/~$-])((?:[\w.-]+/)+(?:[\w.-]*[\w-])?)(?![\w/*<{…])")
DOTTED = re.compile(r"(?<![\w./-])(trm_tf(?:\.\w+)+)(?![\w/*<{…])")
PATTERN_CHARS = ("<", ">", "*", "{", "}", "...", "…")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*|[A-Z]\.\w+")


@functools.cache
def tracked() -> tuple[frozenset[str], frozenset[str]]:
    """(files, folders) of the repository."""
    files = repository_files()
    folders = set()
    for f in files:
        parent = os.path.dirname(f)
        while parent and parent not in folders:
            folders.add(parent)
            parent = os.path.dirname(parent)
    return frozenset(files), frozenset(folders)


def _exists(path: str) -> bool:
    files, folders = tracked()
    return path in files or path in folders


def _top_level() -> set[str]:
    files, folders = tracked()
    return {p for p in files | folders if "/" not in p}


def broken_path(word: str, md_dir: str) -> bool:
    """Whether `word` names a repository path (see the module docstring) that does not exist."""
    if any(c in word for c in PATTERN_CHARS):
        return False
    path = word.rstrip("/")
    first = path.split("/")[0]
    if first not in _top_level() and md_dir and _exists(f"{md_dir}/{first}"):
        path = os.path.normpath(f"{md_dir}/{path}")
    elif first not in _top_level():
        return False  # not a repository path (a run-directory file, a URL's tail, the reference's files)
    if _exists(path):
        return False
    stem, _, name = path.rpartition(".")
    if _exists(stem + ".py") and "/" not in name:  # `configs/validation.validate`: a module's name
        return name not in _definitions(stem + ".py")
    return not any(PLACEHOLDER.fullmatch(part) for part in path.split("/"))


@functools.cache
def _module_file(dotted: str) -> str | None:
    base = os.path.join(*dotted.split("."))
    for rel in (base + ".py", os.path.join(base, "__init__.py")):
        if _exists(rel.replace(os.sep, "/")):
            return rel
    return None


@functools.cache
def _definitions(rel: str) -> dict[str, ast.AST]:
    """Names a module defines at its top level (def, class, assignment; not imports)."""
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        tree = ast.parse(f.read(), rel)
    return _bound(tree.body)


def _bound(body) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out[n.id] = node
        elif isinstance(node, (ast.If, ast.Try)):
            out.update(_bound(node.body + node.orelse))
    return out


def broken_module_name(dotted: str) -> bool:
    """Whether `trm_tf.a.b[.name[.attr]]` names no module (or no name defined in it)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        rel = _module_file(".".join(parts[:i]))
        if rel:
            rest = parts[i:]
            break
    else:
        return True
    if not rest:
        return False
    defined = _definitions(rel)
    if rest[0] not in defined:
        return True
    node = defined[rest[0]]
    if len(rest) > 1 and isinstance(node, ast.ClassDef):
        members = _bound(node.body)
        return rest[1] not in members and not _assigned_on_self(node, rest[1])
    return False


def _assigned_on_self(cls: ast.ClassDef, name: str) -> bool:
    return any(
        isinstance(n, ast.Attribute)
        and isinstance(n.ctx, ast.Store)
        and isinstance(n.value, ast.Name)
        and n.value.id == "self"
        and n.attr == name
        for n in ast.walk(cls)
    )


def broken_references(text: str, md_path: str) -> list[str]:
    """'<file>:<line>: `<name>`' for every path or trm_tf module named in `text` (outside fenced code
    blocks) that does not exist."""
    md_dir = os.path.dirname(md_path)
    masked = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found = [
        (m.start(), m.group(1)) for m in PATH.finditer(masked) if broken_path(m.group(1), md_dir)
    ]
    found += [
        (m.start(), m.group(1)) for m in DOTTED.finditer(masked) if broken_module_name(m.group(1))
    ]
    return [f"{md_path}:{masked.count(chr(10), 0, at) + 1}: `{word}`" for at, word in sorted(found)]


def test_broken_paths_and_module_names_are_caught():
    text = "\n".join(
        [
            "Good: `trm_tf/act.py`, `trm_tf/data/`, `configs/catalogue.py:RUNS`, `docs/model.md#halting`,",
            "`python -m trm_tf.tools.solve --dump=x`, `trm_tf.analysis.run_config.upgrade_config`,",
            "`trm_tf.workdir.RunDir`, `tfds build tfds_builders/arc_agi --manual_dir=/tmp/x`,",
            "`configs/validation.validate` (a module's name),",
            "`dummy_data/` (beside this file), patterns `configs/X.py`, `tests/<pkg>/<mod>_test.py`,",
            "`tfds_builders/NAME`, `trm_tf/*.py`, and no repository path: `gs://b/trm_tf/x.py`, `a/b.py`.",
            "```",
            "python trm_tf/written_by_this_command.py",
            "```",
            "Bad: `trm_tf/models/trm.py`, `tfds_builders/arc_agi/gone/`, `python -m trm_tf.models.trm`,",
            "`trm_tf.act.CarryState` (imported there, defined in trm_tf.carry),",
            "`trm_tf.workdir.RunDir.no_such_method`, `docs/Model.md`, and in prose tests/gone_test.py.",
            "`configs/validation.no_such_name`.",
            "A cut line (the semantics are in trm_tf/ac… is no path.",
        ]
    )
    got = broken_references(text, "tfds_builders/arc_agi/README.md")
    assert got == [
        "tfds_builders/arc_agi/README.md:10: `trm_tf/models/trm.py`",
        "tfds_builders/arc_agi/README.md:10: `tfds_builders/arc_agi/gone/`",
        "tfds_builders/arc_agi/README.md:10: `trm_tf.models.trm`",
        "tfds_builders/arc_agi/README.md:11: `trm_tf.act.CarryState`",
        "tfds_builders/arc_agi/README.md:12: `trm_tf.workdir.RunDir.no_such_method`",
        "tfds_builders/arc_agi/README.md:12: `docs/Model.md`",
        "tfds_builders/arc_agi/README.md:12: `tests/gone_test.py`",
        "tfds_builders/arc_agi/README.md:13: `configs/validation.no_such_name`",
    ]
    # The same text under the repository root: `dummy_data/` is no sibling there, so no path at all.
    assert "`dummy_data/`" not in " ".join(broken_references(text, "README.md"))


def test_every_path_and_module_named_in_the_markdown_exists():
    files, _ = tracked()
    pages = sorted(f for f in files if f.endswith(".md"))
    assert len(pages) > 10 and "docs/layout.md" in pages
    broken = []
    for page in pages:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            broken += broken_references(f.read(), page)
    assert not broken, "names of files or modules that do not exist:\n" + "\n".join(broken)


def misplaced_tests(files) -> list[str]:
    """Test files named after a Python module of the repository that do not sit on its path.

    `tests/<dir>/<name>_test.py` sits on the path of `trm_tf/<dir>/<name>.py` (or the package
    `trm_tf/<dir>/<name>/`) or of `<dir>/<name>.py|.sh` (`bench/`, `scripts/`; at the top of `tests/`, the
    repository's own `<name>.py`). A test file whose name no module has is named after a behaviour.
    """
    sources = [f for f in files if f.endswith(".py") and not f.startswith("tests/")]
    names = {
        os.path.splitext(os.path.basename(f))[0] for f in sources if not f.endswith("_test.py")
    }
    names |= {os.path.basename(os.path.dirname(f)) for f in sources if f.endswith("__init__.py")}
    out = []
    for test in sorted(f for f in files if f.startswith("tests/") and f.endswith("_test.py")):
        folder, name = os.path.split(test[len("tests/") :])
        name = name[: -len("_test.py")]
        if name not in names:
            continue
        mirrors = [
            os.path.join("trm_tf", folder, name + ".py"),
            os.path.join("trm_tf", folder, name, "__init__.py"),
            os.path.join(folder, name + ".py"),
            os.path.join(folder, name + ".sh"),
            os.path.join(folder, name, "__init__.py"),
        ]
        if not any(m in files for m in mirrors):
            out.append(test)
    return out


def test_misplaced_tests_are_caught():
    files = {
        "trm_tf/data/cache.py",
        "launch.py",
        "bench/cost_model.py",
        "trm_tf/tools/render/__init__.py",
        "scripts/launch_pod.sh",
        "scripts/tensorboard.sh",
    }
    files |= {
        "tests/scripts/launch_pod_test.py",  # mirrors scripts/launch_pod.sh
        "tests/tensorboard_test.py",  # a behaviour: tensorboard.sh is a script, no module
        "tests/data/cache_test.py",  # mirrors trm_tf/data/cache.py
        "tests/bench/cost_model_test.py",  # mirrors bench/cost_model.py
        "tests/launch_test.py",  # mirrors the repository's launch.py
        "tests/tools/render_test.py",  # mirrors the package trm_tf/tools/render/
        "tests/pod_rehearsal_test.py",  # a behaviour: no module of that name
        "tests/scripts/launch_test.py",  # named after launch.py, not on its path
        "tests/cache_test.py",  # ditto, trm_tf/data/cache.py
    }
    assert misplaced_tests(frozenset(files)) == [
        "tests/cache_test.py",
        "tests/scripts/launch_test.py",
    ]


def test_test_files_named_after_a_module_sit_on_its_path():
    """README.md and docs/layout.md say so."""
    files, _ = tracked()
    assert not misplaced_tests(files), "rename to the module's path or to the behaviour tested"
