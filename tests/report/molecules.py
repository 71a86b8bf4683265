"""Hand-made molecules for the report tests: small ones embedded by RDKit and relaxed with MMFF (stable under EDM's
bond rule), and copies with shaken atoms (mostly unstable)."""

from __future__ import annotations

import functools

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.batch import Molecule
from molgen.elements import TYPE_INDEX

SMILES = ("CCO", "CC(=O)O", "CC#N", "C1CC1", "OCC(N)C", "FC(F)F", "CC=O", "C1=CCCC1", "CN(C)C=O")


@functools.cache
def embedded(smiles: str) -> Molecule:
    """One conformer of the molecule with its hydrogens: (positions [N, 3] Å, atom types [N])."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(mol)
    types = np.array([TYPE_INDEX[atom.GetSymbol()] for atom in mol.GetAtoms()])
    return mol.GetConformer().GetPositions(), types


def molecules(count: int, seed: int = 0) -> list[Molecule]:
    """`count` molecules cycling through SMILES; every third has its atoms shaken by 0.35 Å."""
    generator = np.random.default_rng(seed)
    made = []
    for index in range(count):
        x, types = embedded(SMILES[index % len(SMILES)])
        if index % 3 == 2:
            x = x + generator.normal(0.0, 0.35, x.shape)
        made.append((x, types))
    return made


def rows(made: list[Molecule]) -> list[dict]:
    """The report's rows of the molecules: EDM's checks and their pieces."""
    from molgen.chem.metrics import check_molecule
    from molgen.cli_report import report_rows

    return report_rows(made, [check_molecule(x, types) for x, types in made])
