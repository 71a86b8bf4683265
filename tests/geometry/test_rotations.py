"""Rotations: quaternions give proper rotations with known values, and random ones are uniform on SO(3)."""

from __future__ import annotations

import math

import torch

from molgen.geometry.rotations import quaternion_to_matrix, random_rotations


def test_random_rotations_are_proper():
    rotation = random_rotations(50, torch.Generator().manual_seed(0), torch.float64, "cpu")  # [50, 3, 3]
    identity = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)  # [50, 3, 3]
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), identity)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(50, dtype=torch.float64))


def test_quaternion_known_values():
    """(1, 0, 0, 0) is the identity; (cos 45°, 0, 0, sin 45°) turns x into y by 90° about z; the scale of q does
    not matter; -q is the same rotation."""
    half = math.sqrt(0.5)
    q = torch.tensor([[2.0, 0, 0, 0], [half, 0, 0, half]], dtype=torch.float64)  # [2, 4]
    matrices = quaternion_to_matrix(q)  # [2, 3, 3]
    torch.testing.assert_close(matrices[0], torch.eye(3, dtype=torch.float64))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(matrices[1], expected)
    torch.testing.assert_close(quaternion_to_matrix(-q), matrices)


def test_random_rotations_are_uniform():
    """Uniform (Haar) on SO(3): a rotated unit vector is uniform on the sphere (each coordinate has mean 0 and
    variance 1/3), and E[R] = 0, so the mean trace 1 + 2 cos(angle) is 0 (a biased draw, e.g. small angles, is not)."""
    rotation = random_rotations(20000, torch.Generator().manual_seed(1), torch.float64, "cpu")  # [20000, 3, 3]
    z = rotation[:, :, 2]  # [20000, 3] the image of e_z
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.03, rtol=0)
    torch.testing.assert_close((z**2).mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02, rtol=0)
    trace = rotation.diagonal(dim1=1, dim2=2).sum(-1)  # [20000]
    assert abs(float(trace.mean())) < 0.03
