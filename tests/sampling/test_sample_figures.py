"""`molgen sample` adds connectivity and the distribution distances to its summary, and writes the per-molecule
table as molecules.csv and as SD properties of molecules.sdf."""

from __future__ import annotations

import csv
import json

import pytest
from rdkit import Chem

from molgen.cli import main


@pytest.mark.slow
def test_sample_writes_the_table_and_the_fast_figures(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["sample", "--checkpoint", str(checkpoint), "-n", "4", "--steps", "3", "--out", str(out), "--grid", "0",
            "--no-progress"]
    assert main(argv) == 0
    assert "connected" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["connected"] <= 1.0 and "angles_w1" in summary["distances"]
    assert "strain" not in summary and "posebusters" not in summary  # evaluate's slow groups only
    assert str(out / "molecules.csv") in summary["files"]
    rows = list(csv.DictReader((out / "molecules.csv").open()))
    assert [row["index"] for row in rows] == ["0", "1", "2", "3"]
    assert list(rows[0]) == ["index", "smiles", "stable", "valid", "unique", "connected", "fragments"]
    assert sum(row["connected"] == "true" for row in rows) == round(4 * summary["connected"])
    records = list(Chem.SDMolSupplier(str(out / "molecules.sdf"), sanitize=False, removeHs=False))
    assert [record.GetProp("fragments") for record in records] == [row["fragments"] for row in rows]


@pytest.mark.slow
def test_evaluate_checkpoint_adds_the_figures_and_the_table(checkpoint, tmp_path, capsys):
    report, table = tmp_path / "eval.json", tmp_path / "molecules.csv"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--num-samples", "3", "--steps", "2", "--nll-passes", "0",
            "--novelty", "no", "--json", str(report), "--csv", str(table), "--no-progress"]
    assert main(argv) == 0
    assert "MMFF94 strain" in capsys.readouterr().out
    result = json.loads(report.read_text())
    assert {"connected", "fragments", "distances", "strain"} <= set(result) and result["n_molecules"] == 3
    assert len(list(csv.DictReader(table.open()))) == 3
