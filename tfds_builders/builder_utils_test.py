"""Source files of a build: a manual dir is never silently replaced, offline fails fast in one line."""

import pytest

from tfds_builders import builder_utils

FILES = {"train": "train.csv", "test": "test.csv"}


class FakeDownloads:
    def __init__(self, manual_dir=None, error=None):
        self._manual_dir, self.error, self.calls = manual_dir, error, []

    @property
    def manual_dir(self):
        if self._manual_dir is None:
            raise AssertionError("no manual dir")  # what TFDS does
        return self._manual_dir

    def download(self, urls):
        self.calls.append(urls)
        if self.error:
            raise self.error
        return {k: f"/downloads/{k}" for k in urls}


def test_manual_dir_with_every_file_is_used(tmp_path):
    for name in FILES.values():
        (tmp_path / name).write_text("x")
    dl = FakeDownloads(str(tmp_path))
    got = builder_utils.manual_or_download(
        dl, FILES, {"train": "https://x/a", "test": "https://x/b"}
    )
    assert {k: p.name for k, p in got.items()} == FILES and not dl.calls


def test_manual_dir_missing_a_file_names_it_and_downloads_nothing(tmp_path):
    (tmp_path / "train.csv").write_text("x")
    dl = FakeDownloads(str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        builder_utils.manual_or_download(dl, FILES, {"train": "https://x/a", "test": "https://x/b"})
    assert "lacks test.csv" in str(e.value) and "\n" not in str(e.value)
    assert not dl.calls


def test_manual_dir_with_none_of_the_files_downloads_them(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    dl = FakeDownloads(str(tmp_path))
    got = builder_utils.manual_or_download(
        dl, FILES, {"train": "https://x/a", "test": "https://x/b"}
    )
    assert dl.calls and str(got["train"]) == "/downloads/train"


def test_a_failed_download_is_one_line_naming_manual_dir():
    dl = FakeDownloads(error=RuntimeError("HTTP 503\nlong traceback"))
    with pytest.raises(ConnectionError) as e:
        builder_utils.manual_or_download(dl, FILES, {"train": "https://x/a", "test": "https://x/b"})
    assert "--manual_dir" in str(e.value) and "\n" not in str(e.value)
