"""Statistics of the training split that EDM uses: node-count histogram and atom-type counts."""

from __future__ import annotations

import torch

from molgen.batch import MAX_ATOMS
from molgen.data.qm9 import QM9Dataset
from molgen.elements import ELEMENTS


def node_count_histogram(molecules: QM9Dataset | torch.Tensor, max_atoms: int = MAX_ATOMS) -> torch.Tensor:
    """Molecules per atom count, int64 [max_atoms + 1] (entry n counts molecules with n atoms), of a data set
    (anything with `num_atoms` [D]) or of the atom counts [D] themselves."""
    num_atoms = torch.as_tensor(getattr(molecules, "num_atoms", molecules))  # [D]
    return torch.bincount(num_atoms, minlength=max_atoms + 1)  # [max_atoms + 1]


def atom_type_counts(dataset: QM9Dataset) -> torch.Tensor:
    """Atoms per element (H, C, N, O, F), int64 [5]."""
    return torch.bincount(dataset.atom_type, minlength=len(ELEMENTS))  # [5]

