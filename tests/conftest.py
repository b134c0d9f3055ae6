"""Fixtures shared by the course's tests."""

import pytest

from demucs_course.toy import make_toy_musdb


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A small toy MUSDB18-HQ set, written once per test session; its folder (a ``pathlib.Path``).

    4 train tracks of 6 s (one of them listed in ``valid.txt``) and 2 test tracks of 4 s, seed 0.
    Read it with ``musdb.DB(toy_root, is_wav=True, subsets=...)``; do not write into it.
    """
    root = tmp_path_factory.mktemp("toy") / "musdb"
    return make_toy_musdb(root, n_train=4, n_valid=1, n_test=2, train_seconds=6, test_seconds=4)
