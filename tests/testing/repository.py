"""The repository's own files, for the tests that read the tree (docs, paths, layout)."""

from __future__ import annotations

import functools
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=1)
def repository_files() -> tuple[str, ...]:
    """Every file of the repository, relative to its root: git's list when available (files deleted in
    the working tree left out), else a walk of the tree without hidden folders."""
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            out += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames]
    return tuple(sorted(f for f in out if os.path.isfile(os.path.join(ROOT, f))))
