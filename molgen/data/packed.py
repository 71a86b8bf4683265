"""Molecules packed into flat arrays (atoms of a molecule contiguous), gathered into `MoleculeBatch`es."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from molgen.batch import MoleculeBatch


class PackedMolecules(Dataset):
    """A split of molecules as flat arrays; item i is a single-molecule `MoleculeBatch`, `batch(indices)` many.

    Args:
        split: the split's name ("train", "valid", "test").
        num_atoms: atoms per molecule, int64 [B].
        positions: centroid-free positions in Å [M, 3] (any float dtype; batches are cast to `dtype`).
        atom_type: index into (H, C, N, O, F), int64 [M].
        index: GDB-9 index of each molecule, int64 [B].
        dtype: dtype of the batches' positions.
    """

    def __init__(self, split: str, num_atoms: Tensor, positions: Tensor, atom_type: Tensor, index: Tensor,
                 dtype: torch.dtype = torch.float32) -> None:
        self.split, self.dtype = split, dtype
        self.num_atoms = num_atoms  # [B]
        self.ptr = torch.cat([torch.zeros(1, dtype=torch.int64), num_atoms.cumsum(0)])  # [B + 1]
        self.positions = positions  # [M, 3]
        self.atom_type = atom_type  # [M]
        self.index = index  # [B]

    def __len__(self) -> int:
        return len(self.num_atoms)

    def __getitem__(self, i: int) -> MoleculeBatch:
        return self.batch([i])

    def batch(self, indices) -> MoleculeBatch:
        """The molecules at `indices` (positions into this split) as one batch."""
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)  # [B]
        if indices.numel() and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"index out of range for the {self.split} split of {len(self)} molecules")
        indices = indices % len(self)
        num_atoms = self.num_atoms[indices]  # [B]
        starts = self.ptr[indices]  # [B]
        offsets = torch.arange(int(num_atoms.sum())) - torch.repeat_interleave(num_atoms.cumsum(0) - num_atoms, num_atoms)
        atom_ids = torch.repeat_interleave(starts, num_atoms) + offsets  # [M]
        return MoleculeBatch.from_arrays(
            self.positions[atom_ids].to(self.dtype), self.atom_type[atom_ids], num_atoms,
            index=self.index[indices], center=False,
        )

    def molecules(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """All molecules as (positions [N, 3], atom types [N]) pairs, the input of the metrics."""
        ptr = self.ptr.tolist()
        pos, types = self.positions.numpy(), self.atom_type.numpy()
        return [(pos[a:b], types[a:b]) for a, b in itertools.pairwise(ptr)]
