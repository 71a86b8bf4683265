"""`molgen evaluate`'s added figures and per-molecule outputs, --bonds file, and their one-line errors."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
from rdkit import Chem

from molgen.chem.io import write_molecules, write_sdf
from molgen.cli import main

WATER = (np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]]), np.array([3, 0, 0]))
METHANE = (
    np.array([[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629], [-0.629, 0.629, -0.629],
              [0.629, -0.629, -0.629]]),
    np.array([1, 0, 0, 0, 0]),
)
TWO_WATERS = (np.concatenate([WATER[0], WATER[0] + 5.0]), np.concatenate([WATER[1], WATER[1]]))


def test_evaluate_writes_the_figures_the_table_and_sd_properties(tmp_path, capsys):
    write_molecules(tmp_path / "a.xyz", [WATER, METHANE, TWO_WATERS])
    out, table, sdf = tmp_path / "m.json", tmp_path / "molecules.csv", tmp_path / "flagged.sdf"
    argv = ["evaluate", str(tmp_path / "a.xyz"), "--novelty", "no", "--json", str(out), "--csv", str(table),
            "--sdf", str(sdf)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "connected 66.67%" in printed and "MMFF94 strain" in printed
    figures = json.loads(out.read_text())
    assert figures["connected"] == 2 / 3 and figures["fragments"] == 4 / 3 and figures["bonds"] == "edm"
    assert {"bond_lengths_w1", "angles_w1", "valency_w1", "atom_types_tv"} <= set(figures["distances"])
    assert figures["strain"]["typed"] == 3 and "posebusters" not in figures
    rows = list(csv.DictReader(table.open()))
    assert [row["connected"] for row in rows] == ["true", "true", "false"] and rows[2]["fragments"] == "2"
    assert rows[0]["smiles"] == "[H]O[H]" and rows[2]["strain_kcal_mol"] != ""
    flagged = list(Chem.SDMolSupplier(str(sdf), removeHs=False))
    assert [mol.GetProp("connected") for mol in flagged] == ["true", "true", "false"]
    assert flagged[1].GetProp("smiles") == "[H]C([H])([H])[H]" and flagged[0].GetNumBonds() == 2


def test_bonds_file_uses_the_sdf_bond_block(tmp_path, capsys):
    far_apart = (np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]]), np.array([0, 0]))  # EDM: no bond
    order = np.array([[0, 1], [1, 0]])
    write_sdf(tmp_path / "h2.sdf", [far_apart], orders=[order])
    for bonds, connected in (("edm", 0.0), ("file", 1.0)):
        out = tmp_path / f"{bonds}.json"
        assert main(["evaluate", str(tmp_path / "h2.sdf"), "--novelty", "no", "--bonds", bonds, "--json", str(out)]) == 0
        figures = json.loads(out.read_text())
        assert figures["connected"] == connected and figures["mol_stable"] == connected
    capsys.readouterr()


def test_bad_figure_arguments_are_one_line_errors(tmp_path, capsys, monkeypatch):
    write_molecules(tmp_path / "a.xyz", [WATER])
    out = tmp_path / "m.json"

    def error(*argv: str) -> str:
        assert main(["evaluate", *argv, "--novelty", "no", "--json", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and not out.exists()
        return err

    assert "--bonds file needs SDF files" in error(str(tmp_path / "a.xyz"), "--bonds", "file")
    assert "--qm9-split and --checkpoint have none" in error("--qm9-split", "test", "--bonds", "file")
    assert "it is a folder" in error(str(tmp_path / "a.xyz"), "--csv", str(tmp_path))
    aromatic = tmp_path / "aromatic.sdf"
    write_sdf(aromatic, [WATER])
    aromatic.write_text(aromatic.read_text().replace("  1  2  1  0", "  1  2  4  0"))
    assert "bond type 4" in error(str(aromatic), "--bonds", "file")
    monkeypatch.setitem(sys.modules, "posebusters", None)  # a broken install: import posebusters fails
    assert "--posebusters needs posebusters 0.6.5" in error(str(tmp_path / "a.xyz"), "--posebusters")
