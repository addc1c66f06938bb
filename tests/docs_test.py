"""The repository documents itself: no citation of documents that do not ship with it, no paths of one
machine, and every `docs/<page>.md#<anchor>` citation points at a heading that exists.

Comments and docstrings cite the project's own pages (docs/model.md, docs/run_directory.md,
docs/experiments.md) or the reference repository's files; a reader of a clone must be able to follow
every citation. Absolute paths of one developer's machine (its workspace or home folders) are meaningless
elsewhere, so they may appear neither in defaults nor in examples (`/tmp/...` examples are fine).
"""

from __future__ import annotations

import os
import re

import pytest

from tests.testing.repository import ROOT, repository_files

THIS = os.path.relpath(os.path.abspath(__file__), ROOT)
SUFFIXES = (".py", ".md", ".sh")

# Names of outside documents (private notes the code was once written from) and machine-path prefixes.
# They are assembled from parts so that this guard does not itself name what it forbids.
_OUTSIDE_DOCS = ["TRM" + "_SPEC", "TF" + "_ENV", "EXPERIMENTS" + r"\.md", "ANCHORS" + r"\.md"]
_OUTSIDE_DOCS += ["ANCHORS" + " §", "FIELD" + r"\.md"]
_MACHINE_DIRS = ("wo" + "rk", "ro" + "ot")
FORBIDDEN = re.compile(
    "|".join(_OUTSIDE_DOCS) + r"|(?<![\w.~-])/(?:" + "|".join(_MACHINE_DIRS) + ")/"
)
# docs/<page>.md#<anchor>, as cited from code and top-level docs.
DOC_CITATION = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")
# (<page>.md#<anchor>) or (#<anchor>) markdown links inside docs/.
DOC_LINK = re.compile(r"\]\((?:([\w-]+\.md))?#([\w-]+)\)")


def tracked_files() -> list[str]:
    """Repository files with a checked suffix."""
    return [f for f in repository_files() if f.endswith(SUFFIXES)]


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: str) -> set[str]:
    """Anchors of every heading of docs/<page> (headings inside fenced code blocks do not count)."""
    out, fenced = set(), False
    for line in read(os.path.join("docs", page)).splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.add(slug(line.lstrip("#")))
    return out


def test_slug_follows_github_rules():
    assert slug("ACT carry") == "act-carry"
    assert slug("carry-N.hostK.npz") == "carry-nhostknpz"
    assert slug("`arc_votes/`") == "arc_votes"
    assert slug("Sudoku-Extreme") == "sudoku-extreme"


def test_forbidden_pattern_catches_outside_citations_and_machine_paths():
    for bad in (
        "(" + "TRM" + "_SPEC §2)",
        "see " + "TF" + "_ENV §b",
        "EXPERIMENTS" + ".md §7.D.1",
        "ANCHORS" + ".md",
        "FIELD" + ".md §1.1",
        "default=/" + "work/shared/data",
        "at /" + "root/.cache",
    ):
        assert FORBIDDEN.search(bad), bad
    for good in ("docs/model.md#act-carry", "--workdir=/tmp/smoke", "gs://b/work/x", "a/work/b"):
        assert not FORBIDDEN.search(good), good


def test_no_outside_documents_or_machine_paths():
    files = [f for f in tracked_files() if not f.startswith("docs/") and f != THIS]
    assert len(files) > 50, "the file list is implausibly short"
    hits = []
    for rel in files:
        for n, line in enumerate(read(rel).splitlines(), 1):
            m = FORBIDDEN.search(line)
            if m:
                hits.append(f"{rel}:{n}: {m.group(0)!r} in {line.strip()[:80]!r}")
    assert not hits, "cite docs/ or the reference repository instead:\n" + "\n".join(hits)


def test_docs_pages_exist():
    for page in ("README.md", "model.md", "run_directory.md", "experiments.md"):
        assert os.path.isfile(os.path.join(ROOT, "docs", page)), page
    # The anchors the code leans on most.
    assert {"act-carry", "halting", "losses", "flops", "arc-voting"} <= anchors("model.md")
    assert {"run_summaryjson", "carry-nhostknpz", "arc_votes"} <= anchors("run_directory.md")


def test_every_docs_citation_resolves():
    cache: dict[str, set[str]] = {}
    missing = []
    for rel in tracked_files():
        text = read(rel)
        found = [(page, anchor) for page, anchor in DOC_CITATION.findall(text)]
        if rel.startswith("docs/"):
            here = os.path.basename(rel)
            found += [(page or here, anchor) for page, anchor in DOC_LINK.findall(text)]
        for page, anchor in found:
            if not os.path.isfile(os.path.join(ROOT, "docs", page)):
                missing.append(f"{rel}: docs/{page} does not exist")
                continue
            if page not in cache:
                cache[page] = anchors(page)
            if anchor not in cache[page]:
                missing.append(f"{rel}: docs/{page}#{anchor} is no heading")
    assert not missing, "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("page", ["model.md", "run_directory.md", "experiments.md"])
def test_docs_pages_have_unique_anchors(page):
    seen = []
    for line in read(os.path.join("docs", page)).splitlines():
        if re.match(r"#{1,6} ", line):
            seen.append(slug(line.lstrip("#")))
    dupes = {a for a in seen if seen.count(a) > 1}
    assert not dupes, f"docs/{page}: headings with the same anchor {sorted(dupes)}"


def test_layout_lists_every_module_and_nothing_gone():
    """docs/layout.md names every module of trm_tf/ and tfds_builders/ (not tests), and no file that is gone."""
    text = read(os.path.join("docs", "layout.md"))
    modules = set()
    for top in ("trm_tf", "tfds_builders"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py") and not f.endswith("_test.py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                    if f != "__init__.py" or os.path.getsize(os.path.join(ROOT, rel)) > 0:
                        modules.add(rel)
    listed = set(re.findall(r"^\| `((?:trm_tf|tfds_builders)/[^`]+\.py)` \|", text, flags=re.M))
    missing = sorted(m for m in modules - listed if not m.endswith("__init__.py"))
    assert not missing, f"docs/layout.md does not list {missing}"
    gone = sorted(listed - modules)
    assert not gone, f"docs/layout.md lists files that do not exist: {gone}"


def test_build_md_says_where_the_host_data_line_goes_on_a_pod():
    """The input pipeline's "data: host k of N: ... in S s" line is a tf.print inside the dataset graph,
    which each host runs: on a pod it lands in that host's TPU runtime's stderr, not in the run log of the
    client on worker 0. BUILD.md's table of what runs where must say so instead of promising it in the
    run log."""
    source = read(os.path.join("trm_tf", "data", "input_pipeline.py"))
    assert re.search(r'tf\.print\(\s*f"data: host \{host\} of \{hosts\}:', source)
    rows = [line for line in read("BUILD.md").splitlines() if "`data: host k of N" in line]
    assert len(rows) == 1, rows
    assert "TPU runtime's stderr, not to worker 0's run log" in rows[0]
