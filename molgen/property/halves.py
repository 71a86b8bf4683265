"""EDM's two halves of the QM9 training split, for property-conditioned generation and its evaluation.

EDM (ehoogeboom/e3_diffusion_for_molecules, qm9/data/utils.py `initialize_datasets`):
`np.random.seed(42); fixed_perm = np.random.permutation(100000)`; `qm9_first_half` = train[fixed_perm[:50000]]
(D_a: the evaluator's), `qm9_second_half` = train[fixed_perm[50000:]] (D_b: the guide's and p(N | c)'s).

The permutation indexes EDM's training ARRAY, whose order is the order of the molecules' files in the GDB-9
tarball, not the order of the split permutation: EDM's preprocessing (qm9/data/prepare/process.py
`process_xyz_files`) keeps the files `[file for idx, file in enumerate(files) if idx in file_idx_list]`, a
membership filter, and the tarball lists the files by GDB-9 index (the exclusion of the 3,054 uncharacterised
molecules, `included_idxs` in qm9/data/prepare/qm9.py, relies on that). molgen's training split is in the split
permutation's order (molgen.data.qm9.edm_split), so EDM's array is molgen's training split sorted by GDB-9 index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from molgen.data.packed import PackedMolecules
from molgen.data.qm9 import SPLIT_SIZES, QM9Arrays, edm_split, load_qm9_arrays
from molgen.property.names import HALVES

HALF_SEED = 42


def edm_training_array() -> np.ndarray:
    """EDM's training array: positions into the index-sorted molecule list, in GDB-9 index order [100000]."""
    return np.sort(edm_split()["train"])


def edm_halves() -> dict[str, np.ndarray]:
    """EDM's halves of the training split as positions into the index-sorted molecule list, in EDM's order."""
    n_train = SPLIT_SIZES["train"]
    fixed_perm = np.random.RandomState(HALF_SEED).permutation(n_train)  # the stream of np.random.seed(42)
    train = edm_training_array()
    return {"first": train[fixed_perm[: n_train // 2]], "second": train[fixed_perm[n_train // 2 :]]}


class QM9Subset(PackedMolecules):
    """Chosen QM9 molecules (positions into the index-sorted list) with their property table [B, P]."""

    def __init__(self, name: str, molecule_ids: np.ndarray, arrays: QM9Arrays,
                 dtype: torch.dtype = torch.float32) -> None:
        self.molecule_ids = np.asarray(molecule_ids)  # [B]
        ptr = arrays.ptr
        atom_ids = np.concatenate([np.arange(ptr[i], ptr[i + 1]) for i in self.molecule_ids])  # [M]
        super().__init__(
            name,
            num_atoms=torch.from_numpy(arrays.num_atoms[self.molecule_ids]),  # [B]
            positions=torch.from_numpy(arrays.positions[atom_ids]),  # [M, 3] float64
            atom_type=torch.from_numpy(arrays.atom_type[atom_ids].astype(np.int64)),  # [M]
            index=torch.from_numpy(arrays.index[self.molecule_ids]),  # [B]
            dtype=dtype,
        )
        self.properties = arrays.properties[self.molecule_ids]  # [B, P] float64


def load_half(half: str, directory: Path | None = None, arrays: QM9Arrays | None = None) -> QM9Subset:
    """EDM's half `half` ("first" or "second") of the training split."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    arrays = arrays if arrays is not None else load_qm9_arrays(directory)
    return QM9Subset(f"train ({half} half)", edm_halves()[half], arrays)
