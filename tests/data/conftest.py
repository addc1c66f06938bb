"""Tiny real TFDS datasets (built with the repository's builders), one per test module."""

import pytest

from tests.testing.tiny_datasets import build_tiny_arc, build_tiny_sudoku


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def spec(data_dir):
    return build_tiny_sudoku(data_dir)


@pytest.fixture(scope="module")
def arc(data_dir):
    return build_tiny_arc(data_dir)
