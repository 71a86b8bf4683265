"""Statistics of the training split that EDM uses: node-count histogram and atom-type counts."""

from __future__ import annotations

import torch

from molgen.batch import MAX_ATOMS
from molgen.data.qm9 import QM9Dataset
from molgen.elements import ELEMENTS


def node_count_histogram(dataset: QM9Dataset, max_atoms: int = MAX_ATOMS) -> torch.Tensor:
    """Molecules per atom count, int64 [max_atoms + 1] (entry n counts molecules with n atoms)."""
    return torch.bincount(dataset.num_atoms, minlength=max_atoms + 1)  # [max_atoms + 1]


def atom_type_counts(dataset: QM9Dataset) -> torch.Tensor:
    """Atoms per element (H, C, N, O, F), int64 [5]."""
    return torch.bincount(dataset.atom_type, minlength=len(ELEMENTS))  # [5]

