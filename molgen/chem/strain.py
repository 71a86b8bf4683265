"""MMFF94 strain of a generated pose, as SemlaFlow reports it (Irwin et al. 2024).

strain = E(pose) - E(relaxed pose) in kcal/mol, the relaxed pose being RDKit's MMFF94 minimisation of the pose
for at most MAX_ITERS iterations; the pose RMSD is the heavy-atom RMSD between the pose and its relaxation after
the best superposition (Kabsch), same atom order, no symmetry search. A molecule gets no strain when it does not
sanitise with its bonds, when an atom lacks hydrogens the pose does not hold (implicit ones), or when MMFF94
has no parameters for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers
from rdkit.Geometry import Point3D
from tqdm.auto import tqdm

from molgen.chem.metrics import build_molecule, sanitize
from molgen.elements import TYPE_INDEX

MAX_ITERS = 1000  # MMFF minimisation iterations (RDKit's MMFFOptimizeMolecule defaults to 200)


@dataclass(frozen=True)
class Strain:
    """One molecule's MMFF94 strain (kcal/mol) and heavy-atom pose RMSD (Å) to its relaxation."""

    strain: float
    rmsd: float
    converged: bool


def kabsch_rmsd(p: np.ndarray, q: np.ndarray) -> float:
    """RMSD between two point sets after the best rotation and translation of p onto q. Shapes: [K, 3], [K, 3]."""
    p, q = p - p.mean(axis=0), q - q.mean(axis=0)  # [K, 3]
    u, _, vt = np.linalg.svd(p.T @ q)  # [3, 3]
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, sign]) @ vt  # [3, 3], a proper rotation
    return float(np.sqrt(((p @ rotation - q) ** 2).sum(axis=1).mean()))


def posed_molecule(positions: np.ndarray, atom_types: np.ndarray, order: np.ndarray) -> Chem.Mol | None:
    """The sanitised RDKit molecule with the pose as its conformer, or None if it does not sanitise."""
    mol = build_molecule(np.asarray(atom_types, dtype=np.intp), order)
    if sanitize(mol) is not None:
        return None
    conformer = Chem.Conformer(len(positions))
    for i, (x, y, z) in enumerate(np.asarray(positions, dtype=np.float64).tolist()):
        conformer.SetAtomPosition(i, Point3D(x, y, z))
    conformer.Set3D(True)
    mol.AddConformer(conformer, assignId=True)
    return mol.GetMol()


def mmff_strain(positions: np.ndarray, atom_types: np.ndarray, order: np.ndarray) -> Strain | None:
    """The MMFF94 strain and pose RMSD of one molecule, or None when MMFF cannot type it (see the module text).

    Shapes: positions [N, 3] (Å), atom_types [N], order [N, N].
    """
    mol = posed_molecule(positions, atom_types, order)
    if mol is None or any(atom.GetNumImplicitHs() for atom in mol.GetAtoms()):
        return None
    with rdBase.BlockLogs():
        properties = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol, mmffVariant="MMFF94")
        if properties is None:
            return None
        field = rdForceFieldHelpers.MMFFGetMoleculeForceField(mol, properties)
        pose_energy = field.CalcEnergy()
        converged = field.Minimize(maxIts=MAX_ITERS) == 0
        relaxed_energy = field.CalcEnergy()
    relaxed = np.array(field.Positions()).reshape(-1, 3)  # [N, 3]
    heavy = np.asarray(atom_types) != TYPE_INDEX["H"]  # [N]
    rmsd = kabsch_rmsd(np.asarray(positions)[heavy], relaxed[heavy]) if heavy.sum() > 1 else 0.0
    return Strain(pose_energy - relaxed_energy, rmsd, converged)


def strains(molecules: Sequence, orders: Sequence[np.ndarray], progress: bool = False) -> list[Strain | None]:
    """`mmff_strain` of every molecule (positions, atom types) with its bond orders."""
    pairs = zip(molecules, orders, strict=True)
    return [mmff_strain(positions, types, order)
            for (positions, types), order in tqdm(pairs, total=len(orders), desc="MMFF strain", disable=not progress)]


def strain_summary(results: Sequence[Strain | None]) -> dict[str, float | int | None]:
    """Mean and median strain and pose RMSD over the typed molecules, with the counts."""
    typed = [result for result in results if result is not None]
    energies, rmsds = [r.strain for r in typed], [r.rmsd for r in typed]
    middle = (lambda values, f: f(values) if values else None)
    return {"max_iters": MAX_ITERS, "typed": len(typed), "untyped": len(results) - len(typed),
            "not_converged": sum(not r.converged for r in typed),
            "mean_kcal_mol": middle(energies, statistics.fmean), "median_kcal_mol": middle(energies, statistics.median),
            "mean_rmsd": middle(rmsds, statistics.fmean), "median_rmsd": middle(rmsds, statistics.median)}
