"""Orientation grids on S^2: the Fibonacci lattice's formula, and the repulsion grid's promises (unit vectors,
balance, determinism, the regular polyhedra, a better spread than the lattice it starts from or random points)."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.geometry.orientations import fibonacci_grid, repulsion_grid


def _pair_dots(grid: torch.Tensor) -> torch.Tensor:
    """oᵀo' of the distinct pairs, sorted. Shapes: grid [O, 3] -> [O(O - 1)/2]."""
    i, j = torch.triu_indices(len(grid), len(grid), offset=1)
    return (grid[i] * grid[j]).sum(-1).sort().values


def _min_distance(grid: torch.Tensor) -> float:
    """Smallest distance between two points of the grid."""
    return torch.pdist(grid).min().item()


def _energy(grid: torch.Tensor) -> float:
    """Coulomb energy Σ_{i<j} 1/‖o_i - o_j‖, the quantity the relaxation lowers."""
    return torch.pdist(grid).reciprocal().sum().item()


def _random_unit_vectors(count: int, seed: int) -> torch.Tensor:
    """Uniform random points on S^2, float64 [count, 3]."""
    v = torch.randn(count, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("count", [1, 8, 13])
def test_fibonacci_grid_is_the_documented_lattice_of_unit_vectors(count):
    """O float64 unit vectors with heights z_i = 1 - (2i + 1)/O and consecutive azimuths a golden angle apart."""
    grid = fibonacci_grid(count)  # [O, 3]
    assert grid.shape == (count, 3) and grid.dtype == torch.float64
    torch.testing.assert_close(grid.norm(dim=-1), torch.ones(count, dtype=torch.float64), rtol=0, atol=1e-15)
    heights = 1.0 - (2.0 * torch.arange(count, dtype=torch.float64) + 1.0) / count  # [O]
    torch.testing.assert_close(grid[:, 2], heights, rtol=0, atol=1e-15)
    azimuth = torch.atan2(grid[:, 1], grid[:, 0])  # [O]
    golden = math.pi * (3.0 - math.sqrt(5.0))
    steps = torch.remainder(azimuth.diff() - golden + math.pi, 2 * math.pi) - math.pi  # [O - 1], wrapped to (-π, π]
    assert all(abs(step) < 1e-12 for step in steps.tolist())
    assert grid[0, 1].item() == 0.0 and grid[0, 0].item() > 0  # azimuth 0 for the first point


def test_grids_reject_a_non_positive_count():
    """Zero orientations is an error, not an empty grid."""
    with pytest.raises(ValueError, match="num_orientations"):
        fibonacci_grid(0)
    with pytest.raises(ValueError, match="num_orientations"):
        repulsion_grid(0)


@pytest.mark.parametrize("count", [8, 12, 16])
def test_repulsion_grid_is_unit_balanced_and_deterministic(count):
    """O float64 unit vectors with Σ o ≈ 0 (the vector readout needs it), identical bit for bit on every call (the
    grid is a buffer of every checkpoint and must be rebuilt the same)."""
    grid = repulsion_grid(count)  # [O, 3]
    assert grid.shape == (count, 3) and grid.dtype == torch.float64
    torch.testing.assert_close(grid.norm(dim=-1), torch.ones(count, dtype=torch.float64), rtol=0, atol=1e-14)
    assert grid.sum(0).norm().item() < 1e-6
    assert torch.equal(repulsion_grid(count), grid)


def test_repulsion_grid_reaches_the_regular_solutions():
    """4 orientations relax to a tetrahedron (all oᵀo' = -1/3), 6 to an octahedron (12 right angles, 3 antipodal
    pairs), 12 to an icosahedron (30 pairs at ±1/√5 each way, 6 antipodal pairs)."""
    tetrahedron = _pair_dots(repulsion_grid(4))  # [6]
    torch.testing.assert_close(tetrahedron, torch.full((6,), -1.0 / 3.0, dtype=torch.float64), rtol=0, atol=1e-6)
    octahedron = _pair_dots(repulsion_grid(6))  # [15]
    expected = torch.tensor([-1.0] * 3 + [0.0] * 12, dtype=torch.float64)
    torch.testing.assert_close(octahedron, expected, rtol=0, atol=1e-6)
    icosahedron = _pair_dots(repulsion_grid(12))  # [66]
    fifth = 1.0 / math.sqrt(5.0)
    expected = torch.tensor([-1.0] * 6 + [-fifth] * 30 + [fifth] * 30, dtype=torch.float64)
    torch.testing.assert_close(icosahedron, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("count", [8, 16])
def test_repulsion_grid_spreads_better_than_its_start_and_random_points(count):
    """The relaxed grid has a lower Coulomb energy and a larger smallest gap than the Fibonacci lattice it starts
    from, and a larger smallest gap than any of 20 sets of uniform random points."""
    grid, start = repulsion_grid(count), fibonacci_grid(count)  # [O, 3] each
    assert _energy(grid) < _energy(start) - 1e-6
    assert _min_distance(grid) > _min_distance(start)
    assert _min_distance(grid) > max(_min_distance(_random_unit_vectors(count, seed)) for seed in range(20))
