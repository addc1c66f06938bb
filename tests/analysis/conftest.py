"""The `study` fixture: the fabricated runs of tests/analysis/study.py, written once per test session, read-only."""

import pytest

from tests.analysis.study import build_study


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("runs"))
