"""MMFF94 strain and pose RMSD; connectivity of hand-made molecules in pieces."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.figures import fast_figures, score
from molgen.chem.strain import kabsch_rmsd, mmff_strain, strain_summary
from molgen.elements import TYPE_INDEX


def relaxed(smiles: str):
    """An MMFF94-relaxed molecule (positions, atom types) with every hydrogen explicit."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    assert AllChem.MMFFOptimizeMolecule(mol, maxIters=10_000, mmffVariant="MMFF94") == 0
    types = np.array([TYPE_INDEX[atom.GetSymbol()] for atom in mol.GetAtoms()])
    return mol.GetConformer().GetPositions(), types


def with_edm_bonds(molecule):
    positions, types = molecule
    return positions, types, bond_order_matrix(positions, types)


def test_strain_is_about_zero_for_a_relaxed_molecule_and_positive_for_a_stretched_one():
    positions, types = relaxed("CCO")
    result = mmff_strain(*with_edm_bonds((positions, types)))
    assert result is not None and abs(result.strain) < 0.01 and result.rmsd < 0.01 and result.converged
    stretched = positions.copy()
    stretched[1] += 0.09 * (stretched[1] - stretched[0]) / np.linalg.norm(stretched[1] - stretched[0])  # C-C + 0.09 Å
    order = bond_order_matrix(positions, types)
    assert np.array_equal(bond_order_matrix(stretched, types), order)  # the same bonds, a strained pose
    result = mmff_strain(stretched, types, order)
    assert result.strain > 2.0 and result.rmsd > 0.01


def test_molecules_mmff_cannot_type_get_no_strain():
    carbon = (np.zeros((1, 3)), np.array([TYPE_INDEX["C"]]))  # methane's hydrogens are implicit, not in the pose
    assert mmff_strain(*with_edm_bonds(carbon)) is None
    summary = strain_summary([None, mmff_strain(*with_edm_bonds(relaxed("C")))])
    assert summary["typed"] == 1 and summary["untyped"] == 1 and summary["median_kcal_mol"] == pytest.approx(0, abs=0.01)


def test_kabsch_rmsd_ignores_rotation_and_translation():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))  # a proper rotation
    assert kabsch_rmsd(points @ rotation.T + 5.0, points) == pytest.approx(0.0, abs=1e-9)
    moved = points.copy()
    moved[0] += [0.0, 0.0, 0.3]
    assert 0.0 < kabsch_rmsd(moved, points) < 0.3 / np.sqrt(6) + 1e-9


def test_connectivity_counts_pieces_before_the_largest_fragment_is_taken():
    ethanol = relaxed("CCO")
    methane = relaxed("C")
    two_pieces = (np.concatenate([ethanol[0], methane[0] + 10.0]), np.concatenate([ethanol[1], methane[1]]))
    three_pieces = (np.concatenate([two_pieces[0], methane[0] - 10.0]), np.concatenate([two_pieces[1], methane[1]]))
    scored = score([ethanol, two_pieces, three_pieces])
    assert scored.fragments == [1, 2, 3]
    assert [check.valid for check in scored.checks] == [True, True, True]  # EDM's validity keeps the largest piece
    figures = fast_figures(scored)
    assert figures["connected"] == pytest.approx(1 / 3) and figures["fragments"] == pytest.approx(2.0)


def test_a_molecule_that_cannot_be_scored_is_in_no_piece_and_has_no_strain():
    from molgen.chem.figures import slow_figures

    broken = (np.full((2, 3), np.nan), np.array([TYPE_INDEX["C"], TYPE_INDEX["O"]]))
    figures, rows = slow_figures(score([relaxed("CO"), broken]), strain=True, posebusters=False)
    assert [row["fragments"] for row in rows] == [1, 0] and figures["connected"] == 0.5
    assert rows[1]["strain_kcal_mol"] is None and rows[0]["strain_kcal_mol"] == pytest.approx(0, abs=0.01)
    assert figures["strain"]["typed"] == 1 and figures["strain"]["untyped"] == 0  # the broken one is not scored
