"""A cache folder that is read-only or not a folder: an intact cache is read without a lock, a cache that must be
built but cannot be written is one `molgen: error:` line naming the folder (exit 2), in every command that reads
the QM9 data. The read-only folders are tested without root's privileges (`unprivileged`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from train.helpers import tiny_config  # tests/ is on sys.path (pytest rootdir-based imports)
from unprivileged import (assert_cannot_write, read_only_folder, run_as_nobody, shared_folder,
                          writable_folder)

import molgen.chem.metrics
import molgen.chem.reference
import molgen.data.export
import molgen.evaluation
import molgen.sampling  # noqa: F401 - the forked child imports nothing new
from molgen.chem.io import write_molecules
from molgen.cli import main
from molgen.data import qm9

CHECKPOINT = Path(__file__).parents[1] / "fixtures" / "qm9_ponita_860b5b7.pt"
WATER = (np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]]), np.array([3, 0, 0]))


@pytest.fixture()
def shared():
    """A folder every user may enter, holding water.xyz, a copy of a checkpoint and a writable `mine/`."""
    folder = shared_folder()
    write_molecules(folder / "water.xyz", [WATER])
    shutil.copyfile(CHECKPOINT, folder / "tiny.pt")
    for name in ("water.xyz", "tiny.pt"):
        (folder / name).chmod(0o644)
    writable_folder(folder / "mine")
    yield folder
    for path in folder.rglob("*"):  # read-only folders included
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _train_config(folder: Path, cache: Path) -> Path:
    values = tiny_config(folder / "mine" / "run", max_steps=1).to_dict()
    values["data"]["cache_dir"] = str(cache)
    path = folder / "tiny.json"
    path.write_text(json.dumps(values))
    path.chmod(0o644)
    return path


def _commands(folder: Path, cache: Path) -> dict[str, list[str]]:
    """Every command that reads the QM9 data, pointed at the cache folder `cache`."""
    at = ["--cache-dir", str(cache)]
    return {
        "evaluate FILE": ["evaluate", str(folder / "water.xyz"), *at],  # novelty is scored by default
        "evaluate --qm9-split": ["evaluate", "--qm9-split", "test", "--novelty", "no", *at],
        "evaluate --checkpoint": ["evaluate", "--checkpoint", str(folder / "tiny.pt"), "-n", "2", "--steps", "2",
                                  "--novelty", "no", "--no-progress", *at],  # the test NLL needs the data
        "train": ["train", str(_train_config(folder, cache)), "--no-progress"],
        "data export": ["data", "export", str(folder / "mine" / "x.npz"), *at],
        "data prepare": ["data", "prepare", *at],
    }


COMMANDS = ["evaluate FILE", "evaluate --qm9-split", "evaluate --checkpoint", "train", "data export", "data prepare"]


def test_an_intact_cache_is_read_without_its_lock(qm9_cache_dir, qm9_arrays, monkeypatch):
    def no_lock(path):
        raise AssertionError(f"took the lock {path}")

    monkeypatch.setattr(qm9, "_exclusive_lock", no_lock)
    arrays = qm9.load_qm9_arrays(qm9_cache_dir, progress=False)
    assert np.array_equal(arrays.positions, qm9_arrays.positions)


@pytest.mark.parametrize("below", [False, True])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_cache_folder_that_is_a_file_is_one_line(command, below, shared, capsys):
    blocking = shared / "water.xyz"
    cache = blocking / "cache" if below else blocking
    before = blocking.read_bytes()
    assert main(_commands(shared, cache)[command]) == 2
    err = capsys.readouterr().err
    where = f" cannot be used: {blocking}" if below else ""
    assert err.startswith(f"molgen: error: the QM9 cache folder {cache}{where} is a file, not a folder") and \
        err.count("\n") == 1, err
    assert blocking.read_bytes() == before
    assert list((shared / "mine").iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_cache_that_must_be_built_in_a_read_only_folder_is_one_line(command, shared):
    cache = read_only_folder(shared / "readonly")
    argv = _commands(shared, cache)[command]

    def child() -> int:
        assert_cannot_write(cache)
        return main(argv)

    output = shared / "output.txt"
    assert run_as_nobody(child, output) == 2, output.read_text()
    assert output.read_text().startswith(f"molgen: error: the QM9 cache must be built in {cache}, which cannot be "
                                         "written (permission denied)"), output.read_text()
    assert output.read_text().count("\n") == 1, output.read_text()
    assert list(cache.iterdir()) == [] and list((shared / "mine").iterdir()) == []


def _read_only_cache(shared: Path, qm9_cache_dir: Path, smiles: bool) -> Path:
    """A read-only copy of the intact cache (with EDM's training SMILES for novelty, faked, if `smiles`)."""
    cache = shared / "readonly"
    cache.mkdir()
    os.link(qm9.cache_path(qm9_cache_dir), qm9.cache_path(cache))  # the same file: instant, and read-only below
    if smiles:
        original = molgen.chem.metrics.training_smiles
        water = molgen.chem.metrics.evaluate_molecules([WATER]).smiles[0]
        molgen.chem.metrics.training_smiles = lambda molecules, progress=False: {water}  # water is not novel
        try:
            molgen.chem.reference.training_smiles(qm9.QM9Dataset("train", cache), cache, progress=False)
        finally:
            molgen.chem.metrics.training_smiles = original
    for path in cache.iterdir():
        path.chmod(0o444)
    return read_only_folder(cache)


@pytest.mark.slow
@pytest.mark.parametrize("command, shown", [("data prepare", "split sizes: train 100,000, valid 17,748, test 13,083"),
                                            ("evaluate FILE", "0.00  0 / 1")])
def test_an_intact_read_only_cache_serves(command, shown, shared, qm9_cache_dir):
    cache = _read_only_cache(shared, qm9_cache_dir, smiles=command == "evaluate FILE")
    argv = _commands(shared, cache)[command]
    before = sorted(p.name for p in cache.iterdir())
    assert main(argv) == 0  # as root first: it imports everything the unprivileged child will need

    def child() -> int:
        assert_cannot_write(cache)
        return main(argv)

    output = shared / "output.txt"
    assert run_as_nobody(child, output) == 0, output.read_text()
    assert shown in output.read_text()
    assert sorted(p.name for p in cache.iterdir()) == before  # no lock file, nothing written


def test_evaluate_checkpoint_fails_before_sampling_where_novelty_cannot_be_cached(shared, qm9_cache_dir,
                                                                                 monkeypatch):
    cache = _read_only_cache(shared, qm9_cache_dir, smiles=False)  # intact data, no training SMILES
    argv = [arg for arg in _commands(shared, cache)["evaluate --checkpoint"] if arg not in ("--novelty", "no")]

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(molgen.sampling, "sample", no_sampling)

    def child() -> int:
        assert_cannot_write(cache)
        return main(argv)

    output = shared / "output.txt"
    assert run_as_nobody(child, output) == 2, output.read_text()
    assert output.read_text() == (f"molgen: error: EDM's training SMILES (for novelty) must be built in {cache}, "
                                  "which cannot be written (permission denied): build it once where it can be "
                                  "written, or choose another cache folder; --novelty no skips novelty\n")
