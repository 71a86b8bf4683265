"""Per-molecule centroids (EDM's "centre of mass" is the unweighted mean of the atom positions)."""

from __future__ import annotations

import torch
from torch import Tensor


def centroid(x: Tensor, batch: Tensor, num_molecules: int) -> Tensor:
    """Unweighted mean position of each molecule.

    Shapes: x [M, D], batch [M] (molecule of each atom) -> [B, D].
    """
    total = x.new_zeros(num_molecules, x.shape[1]).index_add_(0, batch, x)  # [B, D]
    count = torch.bincount(batch, minlength=num_molecules).clamp_min(1)  # [B]
    return total / count.unsqueeze(1).to(x.dtype)  # [B, D]


def remove_centroid(x: Tensor, batch: Tensor, num_molecules: int) -> Tensor:
    """Project onto the zero-centroid subspace of each molecule: x_i - mean_{j in mol(i)} x_j.

    Shapes: x [M, D], batch [M] -> [M, D].
    """
    return x - centroid(x, batch, num_molecules)[batch]  # [M, D]
