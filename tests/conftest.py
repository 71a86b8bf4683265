"""Shared fixtures: one QM9 cache for the whole test run, built in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]  # the tree whose molgen the tests check


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


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Run the tests on one intra-op thread: their tensors are small, and threads on a shared 2-core machine
    mostly wait on each other (the 1000-step sampler test ran 10x slower with two under load). MOLGEN_THREADS
    makes molgen's own thread choice (sampling, training, subprocesses) one thread too, so no test depends on
    how busy the machine is."""
    import os

    import torch

    threads, variable = torch.get_num_threads(), os.environ.get("MOLGEN_THREADS")
    torch.set_num_threads(1)
    os.environ["MOLGEN_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if variable is None:
        del os.environ["MOLGEN_THREADS"]
    else:
        os.environ["MOLGEN_THREADS"] = variable


_BLOCK_IMPORTS = '''
import sys


class _Missing:
    """A meta-path finder that refuses some top-level packages, as on a machine that lacks them."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None


sys.meta_path.insert(0, _Missing())
'''


@pytest.fixture()
def environment_without(tmp_path):
    """env = environment_without("rdkit", "qm9pack"): a subprocess environment in which those packages cannot be
    imported (a sitecustomize refuses them) and the QM9 cache folder is empty, on one thread. The repository the tests
    run from comes next on PYTHONPATH, so the child imports its molgen and not another one installed in editable
    mode."""
    import os

    def environment(*packages: str) -> dict[str, str]:
        site, cache = tmp_path / "site-without", tmp_path / "empty-cache"
        site.mkdir(exist_ok=True)
        cache.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(_BLOCK_IMPORTS.format(blocked=tuple(packages)))
        path = os.pathsep.join(filter(None, [str(site), str(REPOSITORY), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, "MOLGEN_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}

    return environment
