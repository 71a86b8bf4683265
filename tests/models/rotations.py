"""The orthogonal matrices the model tests turn their inputs by: a uniform random rotation, or that rotation
composed with a reflection (det = -1), in float64."""

from __future__ import annotations

import torch

from molgen.geometry.rotations import random_rotations


def orthogonal(seed: int, reflect: bool = False) -> torch.Tensor:
    """A rotation drawn uniformly from SO(3) with `seed`, times diag(1, 1, -1) if `reflect`: [3, 3] float64."""
    q = random_rotations(1, torch.Generator().manual_seed(seed), torch.float64, "cpu")[0]  # [3, 3]
    return q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)) if reflect else q


def assert_equivariant_when_the_grid_turns(model, inputs, q: torch.Tensor) -> None:
    """PONITA's exact symmetry in float64: turning the input and the orientation grid by `q` turns eps_x by `q`
    and leaves eps_h unchanged (`inputs`: z_x, z_h, t, layout)."""
    import copy

    z_x, z_h, t, layout = inputs
    eps_x, eps_h = model(z_x, z_h, t, layout)
    turned = copy.deepcopy(model)
    turned.grid.copy_(model.grid @ q.T)
    eps_xq, eps_hq = turned(z_x @ q.T, z_h, t, layout)
    torch.testing.assert_close(eps_xq, eps_x @ q.T, atol=1e-12, rtol=0)
    torch.testing.assert_close(eps_hq, eps_h, atol=1e-12, rtol=0)
