"""Shared fixtures: one QM9 cache for the whole test run, built in a temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def qm9_cache_dir(tmp_path_factory):
    """A cache folder holding the processed QM9 file, built once per test run."""
    from molgen.data.qm9 import load_qm9_arrays

    directory = tmp_path_factory.mktemp("molgen-cache")
    load_qm9_arrays(directory, progress=False)
    return directory


@pytest.fixture(scope="session")
def qm9_arrays(qm9_cache_dir):
    """All of QM9 as arrays (from the shared cache)."""
    from molgen.data.qm9 import load_qm9_arrays

    return load_qm9_arrays(qm9_cache_dir, progress=False)


@pytest.fixture(scope="session")
def qm9_splits(qm9_arrays):
    """EDM's train/valid/test splits as data sets."""
    from molgen.data.qm9 import SPLITS, QM9Dataset

    return {split: QM9Dataset(split, arrays=qm9_arrays) for split in SPLITS}
