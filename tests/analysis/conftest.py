"""The `study` fixture: the fabricated runs of tests/testing/analysis_study.py, written once per test session, read-only."""

import pytest

from tests.testing.analysis_study import build_study


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("runs"))
