"""Deterministic grids of orientations on the sphere S^2."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fibonacci_grid(num_orientations: int) -> Tensor:
    """Unit vectors of a Fibonacci lattice on S^2, float64.

    Point i has height z_i = 1 - (2i + 1)/O and azimuth i·π(3 - √5) (the golden angle).
    Shapes: -> [O, 3].
    """
    if num_orientations < 1:
        raise ValueError(f"num_orientations must be >= 1, got {num_orientations}")
    i = torch.arange(num_orientations, dtype=torch.float64)  # [O]
    z = 1.0 - (2.0 * i + 1.0) / num_orientations  # [O]
    radius = torch.sqrt((1.0 - z * z).clamp_min(0.0))  # [O]
    azimuth = i * math.pi * (3.0 - math.sqrt(5.0))  # [O]
    return torch.stack([radius * torch.cos(azimuth), radius * torch.sin(azimuth), z], dim=-1)  # [O, 3]


def repulsion_grid(num_orientations: int, steps: int = 2000) -> Tensor:
    """A Fibonacci lattice relaxed by Coulomb repulsion on S^2: deterministic, and balanced (Σ o ≈ 0).

    Balance matters for the vector readout Σ_o f(o)·o, which must vanish for features constant over o.
    The relaxation reaches the regular solutions where they exist (tetrahedron for 4, octahedron for 6,
    icosahedron for 12 orientations). Shapes: -> [O, 3], float64.
    """
    grid = fibonacci_grid(num_orientations)  # [O, 3]
    self_pair = torch.eye(num_orientations, dtype=torch.bool)  # [O, O]
    for _ in range(steps):
        diff = grid.unsqueeze(1) - grid.unsqueeze(0)  # [O, O, 3]
        dist = torch.linalg.vector_norm(diff, dim=-1).masked_fill(self_pair, 1.0)  # [O, O]
        force = (diff / dist.unsqueeze(-1) ** 3).masked_fill(self_pair.unsqueeze(-1), 0.0).sum(1)  # [O, 3]
        force = force - (force * grid).sum(-1, keepdim=True) * grid  # [O, 3] tangent part
        grid = grid + (0.5 / num_orientations) * force  # [O, 3]
        grid = grid / torch.linalg.vector_norm(grid, dim=-1, keepdim=True)  # [O, 3]
    return grid
