"""PoseBusters' mol checks: hand-made failures, the QM9 test molecules' pass rate, pass rates over all molecules,
and a broken install as one line."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

from molgen.chem.busters import ENERGY_CHECK, failed_checks, posebusters_config, posebusters_summary
from molgen.elements import TYPE_INDEX
from molgen.errors import MolgenError


def relaxed(smiles: str, dihedrals: tuple = ()) -> tuple:
    """(positions, atom types, Kekulé bond orders) of an MMFF-relaxed molecule, dihedrals (i, j, k, l, degrees) set."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    AllChem.MMFFOptimizeMolecule(mol, maxIters=10_000)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    for *atoms, degrees in dihedrals:
        rdMolTransforms.SetDihedralDeg(mol.GetConformer(), *atoms, degrees)
    types = np.array([TYPE_INDEX[atom.GetSymbol()] for atom in mol.GetAtoms()])
    order = np.zeros((len(types), len(types)), dtype=np.int64)
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        order[i, j] = order[j, i] = int(bond.GetBondTypeAsDouble())
    return mol.GetConformer().GetPositions(), types, order


def bust(*molecules) -> list[list[str]]:
    _, failed = failed_checks([(x, t) for x, t, _ in molecules], [o for _, _, o in molecules], workers=2)
    return failed


@pytest.mark.slow
def test_hand_made_failures():
    ethanol = relaxed("CCO")
    curled = relaxed("CCCCCC", [(0, 1, 2, 3, 0.0), (1, 2, 3, 4, 0.0), (2, 3, 4, 5, 0.0)])  # C1 and C6 meet
    assert np.linalg.norm(curled[0][0] - curled[0][5]) < 1.0 and curled[2][0, 5] == 0
    x, types, order = relaxed("c1ccccc1")
    normal = np.cross(x[1] - x[0], x[2] - x[0])
    bent = x.copy()
    bent[[0, 3]] += 0.9 * normal / np.linalg.norm(normal)  # a boat: atoms 1 and 4 of the ring 0.9 Å out of plane
    methane = relaxed("C")
    two = (np.concatenate([ethanol[0], methane[0] + 8.0]), np.concatenate([ethanol[1], methane[1]]),
           np.block([[ethanol[2], np.zeros((9, 5), dtype=np.int64)], [np.zeros((5, 9), dtype=np.int64), methane[2]]]))
    five_bonds = ethanol[2].copy()
    five_bonds[0, 2] = five_bonds[2, 0] = 1  # the first carbon (already bonded four times) also bonded to the O
    failed = bust(ethanol, curled, (bent, types, order), two, (ethanol[0], ethanol[1], five_bonds))
    assert failed[0] == []
    assert "internal_steric_clash" in failed[1]
    assert failed[2] == ["aromatic_ring_flatness"]
    assert "all_atoms_connected" in failed[3] and "sanitization" not in failed[3]
    assert len(failed[4]) == 12  # it cannot be built: it fails every check


@pytest.mark.slow
def test_qm9_test_molecules_pass_about_95_percent(qm9_cache_dir):
    """Measured with EDM's bonds and posebusters 0.6.5: 95% of the first 200 test molecules pass every check."""
    from molgen.chem.bonds import bond_order_matrix
    from molgen.data.qm9 import QM9Dataset

    molecules = QM9Dataset("test", qm9_cache_dir).molecules()[:200]
    names, failed = failed_checks(molecules, [bond_order_matrix(x, t) for x, t in molecules], workers=2)
    summary = posebusters_summary(names, failed)
    assert 0.90 <= summary["pass"] <= 0.99
    assert summary["pass"] <= summary["pass_without_energy"]


def test_pass_rates_count_every_molecule():
    names = ["sanitization", "all_atoms_connected", ENERGY_CHECK]
    failed = [[], [ENERGY_CHECK], ["all_atoms_connected"], list(names), [f"{ENERGY_CHECK}?"]]
    summary = posebusters_summary(names, failed)
    assert summary["pass"] == 0.4 and summary["pass_without_energy"] == 0.6  # no verdict is no failure
    assert summary["sanitization"] == 0.8 and summary[ENERGY_CHECK] == 0.6 and summary["molecules"] == 5
    assert summary["not_computed"] == {ENERGY_CHECK: 1}


def test_a_broken_install_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "posebusters", None)  # import posebusters raises ImportError
    with pytest.raises(MolgenError) as error:
        posebusters_config()
    assert "\n" not in str(error.value) and "pip install posebusters==0.6.5" in str(error.value)
