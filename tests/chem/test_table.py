"""The per-molecule table: row keys and values, CSV text and SD properties."""

from types import SimpleNamespace

import numpy as np

from molgen.chem.table import molecule_rows, rows_csv, sd_properties


def _check(valid, smiles, stable):
    return SimpleNamespace(valid=valid, smiles=smiles, stable=stable, stable_atoms=np.ones(3, bool))


def test_rows_mark_the_first_of_each_smiles_unique_and_count_pieces():
    checks = [_check(True, "C", True), _check(True, "C", False), _check(False, None, False), _check(True, "O", True)]
    rows = molecule_rows(checks, [1, 2, 1, 1])
    assert [row["unique"] for row in rows] == [True, False, False, True]
    assert [row["connected"] for row in rows] == [True, False, True, True]
    assert rows[2]["smiles"] == "" and rows[1]["fragments"] == 2
    assert list(rows[0]) == ["index", "smiles", "stable", "valid", "unique", "connected", "fragments"]


def test_optional_columns_and_their_text():
    strains = [SimpleNamespace(strain=1.5, rmsd=0.25), None]
    rows = molecule_rows([_check(True, "C", True), _check(False, None, False)], [1, 3], strains,
                         [[], ["sanitization", "all_atoms_connected"]])
    assert rows[1]["strain_kcal_mol"] is None and rows[0]["pose_rmsd"] == 0.25
    assert rows[1]["posebusters_failed"] == "sanitization;all_atoms_connected"
    text = rows_csv(rows).splitlines()
    assert text[0] == "index,smiles,stable,valid,unique,connected,fragments,strain_kcal_mol,pose_rmsd,posebusters_failed"
    assert text[2] == "1,,false,false,false,false,3,,,sanitization;all_atoms_connected"
    assert sd_properties(rows[0])["strain_kcal_mol"] == "1.5" and "index" not in sd_properties(rows[0])
