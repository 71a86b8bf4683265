"""The orthogonal matrices the model tests turn their inputs by: a uniform random rotation, or that rotation
composed with a reflection (det = -1), in float64."""

from __future__ import annotations

import torch

from molgen.geometry.rotations import random_rotations


def orthogonal(seed: int, reflect: bool = False) -> torch.Tensor:
    """A rotation drawn uniformly from SO(3) with `seed`, times diag(1, 1, -1) if `reflect`: [3, 3] float64."""
    q = random_rotations(1, torch.Generator().manual_seed(seed), torch.float64, "cpu")[0]  # [3, 3]
    return q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)) if reflect else q
