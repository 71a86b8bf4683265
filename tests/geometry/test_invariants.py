"""PONITA's pair invariants (a, b) and orientation invariants oᵀo': known values, layout, and invariance under
rotations, reflections and translations that move the grid with the positions."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.geometry.invariants import orientation_invariants, pair_invariants


def _random_orthogonal(seed: int, reflect: bool = False) -> torch.Tensor:
    """A random rotation (or rotation times a reflection), float64 [3, 3]."""
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.det(q))  # [3, 3], det +1
    return q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)) if reflect else q


def _random_configuration(seed: int = 0):
    """Positions x [B, N, 3] and a random grid of unit vectors [O, 3], float64."""
    generator = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)  # [B, N, 3]
    grid = torch.randn(6, 3, generator=generator, dtype=torch.float64)  # [O, 3]
    return x, grid / grid.norm(dim=-1, keepdim=True)


def test_pair_invariants_known_values_of_a_hand_made_pair():
    """Atoms at 0 and (1, 2, 2) (distance 3). Along z: a = 2, b = √5; along x: a = 1, b = √8. Swapping sender and
    receiver flips a, keeps b; a self-pair has a = b = 0. Layout [B, O, N_i, N_j, 2], orientation first."""
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]], dtype=torch.float64)  # [1, 2, 3]
    grid = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)  # [2, 3]: z, x
    result = pair_invariants(x, grid)  # [1, 2, 2, 2, 2]
    assert result.shape == (1, 2, 2, 2, 2)
    along_z, along_x = result[0, 0], result[0, 1]  # [N_i, N_j, 2] each
    torch.testing.assert_close(along_z[0, 1], torch.tensor([2.0, math.sqrt(5.0)], dtype=torch.float64))
    torch.testing.assert_close(along_z[1, 0], torch.tensor([-2.0, math.sqrt(5.0)], dtype=torch.float64))
    torch.testing.assert_close(along_x[0, 1], torch.tensor([1.0, math.sqrt(8.0)], dtype=torch.float64))
    torch.testing.assert_close(along_x[1, 0], torch.tensor([-1.0, math.sqrt(8.0)], dtype=torch.float64))
    assert torch.equal(result[0, :, [0, 1], [0, 1]], torch.zeros(2, 2, 2, dtype=torch.float64))  # self-pairs


def test_pair_invariants_split_the_distance_into_axial_and_radial_parts():
    """For unit orientations a² + b² = ‖x_j - x_i‖² (Pythagoras) for every pair and orientation, and b >= 0."""
    x, grid = _random_configuration()
    result = pair_invariants(x, grid)  # [B, O, N, N, 2]
    squared = torch.cdist(x, x).square().unsqueeze(1).expand(-1, grid.shape[0], -1, -1)  # [B, O, N, N]
    torch.testing.assert_close(result[..., 0].square() + result[..., 1].square(), squared, rtol=0, atol=1e-12)
    assert (result[..., 1] >= 0).all()


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_pair_invariants_are_unchanged_when_positions_and_grid_move_together(reflect):
    """x -> Qx + t with the grid o -> Qo leaves (a, b) unchanged to float64 rounding, for proper and improper Q;
    moving the positions alone does change them (the grid is what makes them invariant)."""
    x, grid = _random_configuration(seed=1)
    q = _random_orthogonal(seed=5, reflect=reflect)  # [3, 3]
    shift = torch.tensor([3.0, -1.0, 0.25], dtype=torch.float64)
    before = pair_invariants(x, grid)  # [B, O, N, N, 2]
    after = pair_invariants(x @ q.T + shift, grid @ q.T)  # [B, O, N, N, 2]
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)
    assert (pair_invariants(x @ q.T, grid) - before).abs().max() > 1e-2


def test_orientation_invariants_known_values_and_rotation_invariance():
    """oᵀo' for the grid (x, y, -x) is [[1, 0, -1], [0, 1, 0], [-1, 0, 1]] in shape [O, O, 1], and a common
    rotation of the grid leaves it unchanged."""
    grid = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)  # [3, 3]
    expected = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    result = orientation_invariants(grid)  # [3, 3, 1]
    assert result.shape == (3, 3, 1)
    assert torch.equal(result[..., 0], expected)
    q = _random_orthogonal(seed=2)
    torch.testing.assert_close(orientation_invariants(grid @ q.T), result, rtol=0, atol=1e-14)
