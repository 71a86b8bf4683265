"""EDM's training SMILES are computed once per split and cached beside the QM9 data."""

from __future__ import annotations

import molgen.chem.metrics
from molgen.chem.reference import training_smiles
from molgen.data.qm9 import CACHE_FORMAT_VERSION


def _counting(monkeypatch) -> list[int]:
    """Replace the RDKit computation by a fake that records how many molecules it was given."""
    calls: list[int] = []

    def compute(molecules, progress=False):
        calls.append(len(molecules))
        return {"C", "O"}

    monkeypatch.setattr(molgen.chem.metrics, "training_smiles", compute)
    return calls


def test_computed_once_then_read_from_the_cache(qm9_splits, tmp_path, monkeypatch, capsys):
    calls = _counting(monkeypatch)
    assert training_smiles(qm9_splits["train"], tmp_path) == {"C", "O"}
    path = tmp_path / f"qm9_train_smiles_v{CACHE_FORMAT_VERSION}.txt"
    assert path.read_text().splitlines()[1:] == ["C", "O"]
    assert f"cached as {path} (once)" in capsys.readouterr().err
    assert training_smiles(qm9_splits["train"], tmp_path) == {"C", "O"}
    assert calls == [len(qm9_splits["train"])]
    assert capsys.readouterr().err == ""


def test_a_cache_of_other_molecules_is_recomputed(qm9_splits, tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    path = tmp_path / f"qm9_train_smiles_v{CACHE_FORMAT_VERSION}.txt"
    path.write_text("not-the-hash\nCCO\n")
    assert training_smiles(qm9_splits["train"], tmp_path, progress=False) == {"C", "O"}
    assert len(calls) == 1
    assert path.read_text().splitlines()[0] != "not-the-hash"
