"""Dense padded blocks for fully connected molecular graphs: [M, ...] atoms <-> [B, N, ...] molecules."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from molgen.data.batch import MoleculeLayout


@dataclass(frozen=True)
class DenseLayout:
    """Where each atom sits in a [B, N] block padded to the largest molecule N.

    Attributes:
        slot: flat index b * N + n of each atom, int64 [M].
        mask: which slots hold an atom, bool [B, N].
    """

    slot: Tensor
    mask: Tensor

    @property
    def num_molecules(self) -> int:
        """B."""
        return self.mask.shape[0]

    @property
    def max_atoms(self) -> int:
        """N, the padded size."""
        return self.mask.shape[1]

    @property
    def pair_mask(self) -> Tensor:
        """Pairs of distinct real atoms of the same molecule, bool [B, N, N] (no self-loops)."""
        eye = torch.eye(self.max_atoms, dtype=torch.bool, device=self.mask.device)  # [N, N]
        return self.mask.unsqueeze(2) & self.mask.unsqueeze(1) & ~eye  # [B, N, N]


def dense_layout(layout: MoleculeLayout) -> DenseLayout:
    """The padded layout of a batch of molecules (atoms of a molecule contiguous, in order)."""
    num_atoms = layout.num_atoms  # [B]
    max_atoms = int(num_atoms.max()) if num_atoms.numel() else 0
    position = torch.arange(layout.batch.numel(), device=num_atoms.device) - layout.ptr[layout.batch]  # [M]
    slot = layout.batch * max_atoms + position  # [M]
    mask = torch.arange(max_atoms, device=num_atoms.device) < num_atoms.unsqueeze(1)  # [B, N]
    return DenseLayout(slot=slot, mask=mask)


def to_dense(values: Tensor, dense: DenseLayout) -> Tensor:
    """Scatter atom values into padded molecule blocks (zeros in the padding).

    Shapes: values [M, *F] -> [B, N, *F].
    """
    out = values.new_zeros(dense.num_molecules * dense.max_atoms, *values.shape[1:])  # [B*N, *F]
    out = out.index_copy(0, dense.slot, values)  # [B*N, *F]
    return out.view(dense.num_molecules, dense.max_atoms, *values.shape[1:])  # [B, N, *F]


def from_dense(values: Tensor, dense: DenseLayout) -> Tensor:
    """Gather the real atoms back out of padded blocks.

    Shapes: values [B, N, *F] -> [M, *F].
    """
    return values.reshape(dense.num_molecules * dense.max_atoms, *values.shape[2:])[dense.slot]  # [M, *F]
