"""Rotations of 3D space: from unit quaternions, and drawn uniformly from SO(3)."""

from __future__ import annotations

import torch
from torch import Tensor


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """The rotation matrices of quaternions q = (w, x, y, z) [..., 4] (normalised here), [..., 3, 3]."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(dim=-1)  # [...] each
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)  # [..., 3, 3]


def random_rotations(num: int, generator: torch.Generator | None, dtype: torch.dtype, device) -> Tensor:
    """Rotations drawn uniformly from SO(3) as normalised Gaussian quaternions (drawn in float64), [num, 3, 3]."""
    q = torch.randn(num, 4, dtype=torch.float64, device=device, generator=generator)  # [B, 4]
    return quaternion_to_matrix(q).to(dtype)  # [B, 3, 3]
