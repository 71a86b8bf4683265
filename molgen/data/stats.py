"""Statistics of the training split that EDM uses: node-count histogram and atom-type counts."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from molgen.atomic import atomic_write
from molgen.batch import MAX_ATOMS
from molgen.data.qm9 import CACHE_FORMAT_VERSION, QM9Dataset, cache_dir
from molgen.elements import ELEMENTS


def node_count_histogram(dataset: QM9Dataset, max_atoms: int = MAX_ATOMS) -> torch.Tensor:
    """Molecules per atom count, int64 [max_atoms + 1] (entry n counts molecules with n atoms)."""
    return torch.bincount(dataset.num_atoms, minlength=max_atoms + 1)  # [max_atoms + 1]


def atom_type_counts(dataset: QM9Dataset) -> torch.Tensor:
    """Atoms per element (H, C, N, O, F), int64 [5]."""
    return torch.bincount(dataset.atom_type, minlength=len(ELEMENTS))  # [5]


def training_smiles(dataset: QM9Dataset, directory: Path | None = None, progress: bool = True) -> set[str]:
    """EDM's training SMILES for novelty (whole molecules, sanitisable ones only), cached beside the data."""
    from molgen.chem.metrics import training_smiles as compute

    path = (directory or cache_dir()) / f"qm9_{dataset.split}_smiles_v{CACHE_FORMAT_VERSION}.txt"
    key = hashlib.sha256(dataset.positions.numpy().tobytes() + dataset.atom_type.numpy().tobytes()).hexdigest()
    if path.exists():
        header, *smiles = path.read_text().splitlines()
        if header == key:
            return set(smiles)
    if progress:
        print(f"computing EDM's training SMILES for novelty, cached as {path} (once)", file=sys.stderr)
    smiles = compute(dataset.molecules(), progress=progress)
    with atomic_write(path) as handle:
        handle.write("\n".join([key, *sorted(smiles)]) + "\n")
    return smiles
