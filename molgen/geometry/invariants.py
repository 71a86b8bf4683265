"""PONITA's invariant attributes of point pairs in position-orientation space R^3 x S^2 (Bekkers et al. 2024).

For a receiving atom i, a sending atom j and an orientation o, with rel = x_j - x_i:
    a = oᵀrel (the component along o),  b = ‖rel - a·o‖ (the distance from the axis through x_i along o).
Between two orientations o, o' of the same atom the invariant is oᵀo'. These attributes identify the
equivalence classes of point pairs under rotations and translations (the paper's main theorem).
"""

from __future__ import annotations

import torch
from torch import Tensor


def pair_invariants(x: Tensor, grid: Tensor) -> Tensor:
    """The spatial invariants (a, b) of every orientation o and ordered pair (i receives from j), orientation
    first (the layout of PONITA's pair tensors).

    Shapes: x [B, N, 3], grid [O, 3] -> [B, O, N, N, 2].
    """
    rel = x.unsqueeze(1) - x.unsqueeze(2)  # [B, N, N, 3]: rel[b, i, j] = x_j - x_i
    a = torch.einsum("bijd,od->boij", rel, grid)  # [B, O, N, N]
    axis = grid.view(1, -1, 1, 1, 3)  # [1, O, 1, 1, 3]
    b = torch.linalg.vector_norm(rel.unsqueeze(1) - a.unsqueeze(-1) * axis, dim=-1)  # [B, O, N, N]
    return torch.stack([a, b], dim=-1)  # [B, O, N, N, 2]


def orientation_invariants(grid: Tensor) -> Tensor:
    """The spherical invariant oᵀo' of every pair of orientations.

    Shapes: grid [O, 3] -> [O, O, 1].
    """
    return (grid @ grid.T).unsqueeze(-1)  # [O, O, 1]
