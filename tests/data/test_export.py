"""Data exports: a round trip gives the cache's batches bitwise; damaged, foreign or missing files give one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molgen.cli import main
from molgen.data.export import EXPORT_FORMAT, export_splits, load_export
from molgen.data.stats import node_count_histogram
from molgen.errors import DataError


@pytest.fixture(scope="module")
def full_export(qm9_splits, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "qm9.npz"
    assert export_splits(path, qm9_splits) == {"train": 100_000, "valid": 17_748}
    return path


def test_round_trip_equals_the_cache(full_export, qm9_splits):
    path = full_export
    assert path.stat().st_size < 29 * 2**20  # float32 positions, uint8 types
    with np.load(path) as data:
        dtypes = {name: data[name].dtype for name in ("train_positions", "train_atom_type", "train_offsets",
                                                      "train_index")}
    assert dtypes == {"train_positions": np.float32, "train_atom_type": np.uint8, "train_offsets": np.int64,
                      "train_index": np.int32}
    export = load_export(path)
    assert torch.equal(export.node_histogram, node_count_histogram(qm9_splits["train"]))
    for split in ("train", "valid"):
        exported, cached = export.splits[split], qm9_splits[split]
        assert len(exported) == len(cached) and torch.equal(exported.num_atoms, cached.num_atoms)
        indices = torch.randperm(len(cached), generator=torch.Generator().manual_seed(0))[:300]
        a, b = exported.batch(indices), cached.batch(indices)
        for name in ("x", "atom_type", "charge", "batch", "ptr", "index"):
            assert torch.equal(getattr(a, name), getattr(b, name)), (split, name)


def test_first_molecules_keep_the_whole_histogram(qm9_splits, tmp_path):
    export_splits(tmp_path / "small.npz", qm9_splits, max_molecules=10)
    export = load_export(tmp_path / "small.npz", dtype=torch.float64)
    assert [len(export.splits[s]) for s in ("train", "valid")] == [10, 10]
    assert int(export.node_histogram.sum()) == 100_000
    batch = export.splits["valid"].batch(range(10))
    assert batch.x.dtype == torch.float64
    assert torch.equal(batch.index, qm9_splits["valid"].index[:10])
    torch.testing.assert_close(batch.x, qm9_splits["valid"].batch(range(10)).x.double(), rtol=0, atol=1e-6)


def test_damaged_foreign_and_missing_files(qm9_splits, tmp_path):
    path = tmp_path / "small.npz"
    export_splits(path, qm9_splits, max_molecules=10)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}

    arrays["train_positions"] = arrays["train_positions"] + 1  # changed after the checksum was taken
    np.savez(tmp_path / "changed.npz", **arrays)
    arrays["meta"] = np.array([str(EXPORT_FORMAT + 1), "x"])
    np.savez(tmp_path / "newer.npz", **arrays)
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[:1000])
    np.savez(tmp_path / "foreign.npz", positions=np.zeros((3, 3)))
    cases = {"changed.npz": "damaged", "newer.npz": f"format {EXPORT_FORMAT + 1}", "truncated.npz": "not a readable",
             "foreign.npz": "not a readable", "missing.npz": "no such data export"}
    for name, problem in cases.items():
        with pytest.raises(DataError, match=problem) as caught:
            load_export(tmp_path / name)
        assert "\n" not in str(caught.value) and name in str(caught.value)
    with pytest.raises(DataError, match=">= 1"):
        export_splits(tmp_path / "none.npz", qm9_splits, max_molecules=0)


def test_cli_export_and_train_errors(qm9_cache_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "tiny.npz"
    assert main(["data", "export", str(out), "--max-molecules", "20", "--cache-dir", str(qm9_cache_dir)]) == 0
    assert "train 20 and valid 20 molecules" in capsys.readouterr().out
    assert len(load_export(out).splits["train"]) == 20
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"run_dir": str(tmp_path / "run"), "train": {"device": "cpu"}}))
    assert main(["train", str(config), "--data", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.npz: no such data export" in err
    assert main(["train", str(config), "--data", str(out), "--time-limit", "0"]) == 2
    assert "--time-limit must be a number of seconds > 0" in capsys.readouterr().err


def test_training_from_a_cache_file_says_what_the_file_is(qm9_cache_dir, tmp_path, capsys):
    cache_file = qm9_cache_dir / "qm9_v1.npz"
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"run_dir": str(tmp_path / "run"), "train": {"device": "cpu"}}))
    assert main(["train", str(config), "--data", str(cache_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cache_file}: not a molgen data export" in err
    assert "num_atoms" in err and "molgen data export" in err and "format" not in err
