"""Cut the fragments of eval/fragment_inpainting.md from QM9 test molecules and write them as eval/fragments/*.xyz.

Each fragment is the atoms of a SMARTS match in the first stable QM9 molecule (test split first, then the rest,
each in GDB-9 order) that has one, in that molecule's coordinates, with no hydrogens on the atoms where new atoms
should attach. Needs the QM9 data.

    .venv/bin/python eval/make_fragments.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.draw import molecule_to_rdkit
from molgen.chem.io import write_xyz
from molgen.chem.metrics import check_molecule
from molgen.data.qm9 import edm_split, load_qm9_arrays

OUT = Path(__file__).resolve().parent / "fragments"
# name -> SMARTS; the fragment is every atom of the match (explicit hydrogens only where written)
FRAGMENTS = {
    "benzene_ring": "c1ccccc1",
    "carboxyl": "[CX3](=O)[OX2]",  # an acid or ester group: new atoms attach at C and at the single-bonded O
    "carbonyl": "[CX3;$(C([#6])[#6])]=O",  # a ketone C=O: new atoms attach at the C
    "furan_ring": "c1ccoc1",
}
RINGS = ("benzene_ring", "furan_ring")  # every ring atom must keep its ring double bond: one open valence at most
VALENCE = np.array([1, 4, 3, 2, 1])  # H, C, N, O, F


def open_valences(x: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Valence minus the bond-order sum within the fragment itself (EDM's rule), per atom [K]."""
    return VALENCE[types] - bond_order_matrix(x, types).sum(axis=1)


def cut(arrays, order: np.ndarray, smarts: str, ring: bool) -> tuple[int, np.ndarray, np.ndarray]:
    """(GDB-9 index, positions [K, 3], atom types [K]) of the first stable molecule of `order` matching `smarts`.

    A ring must be a proper one on its own (a Kekulé structure inside the ring, not one that needs exocyclic
    double bonds): no atom with more than one open valence.
    """
    from rdkit import Chem

    pattern = Chem.MolFromSmarts(smarts)
    ptr = arrays.ptr
    for i in order:
        x, types = arrays.positions[ptr[i]:ptr[i + 1]], arrays.atom_type[ptr[i]:ptr[i + 1]]
        if not check_molecule(x, types).stable:
            continue
        match = molecule_to_rdkit(x, types).GetSubstructMatch(pattern)
        atoms = np.array(match, dtype=np.int64)
        if match and not (ring and open_valences(x[atoms], types[atoms]).max() > 1):
            return int(arrays.index[i]), x[atoms], types[atoms]
    raise LookupError(f"no molecule matches {smarts}")


def main() -> None:
    arrays = load_qm9_arrays(progress=False)
    test = np.sort(edm_split()["test"])  # [13083]
    order = np.concatenate([test, np.setdiff1d(np.arange(len(arrays.index)), test)])  # test split first
    OUT.mkdir(exist_ok=True)
    for name, smarts in FRAGMENTS.items():
        index, x, types = cut(arrays, order, smarts, name in RINGS)
        write_xyz(OUT / f"{name}.xyz", [(x, types)], [f"{name}: {smarts} cut from QM9 gdb {index}"])
        print(f"{name}: {len(types)} atoms from gdb {index}")


if __name__ == "__main__":
    main()
