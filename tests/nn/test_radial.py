"""Radial features (molgen.nn.radial): Bessel and Gaussian values by hand, the cutoff, and the spatial basis that
takes them as more first-layer inputs."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.nn.basis import KernelBasis
from molgen.nn.radial import RadialFeatures, bessel_features, gaussian_features


def test_bessel_features_by_hand():
    """√(2/c)·sin(nπx/c)/x at x = 1.5, c = 4, its limit √(2/c)·nπ/c at x = 0, zero at and past the cutoff."""
    x = torch.tensor([1.5, 0.0, -1.5, 4.0, 7.0], dtype=torch.float64)
    features = bessel_features(x, 3, 4.0)  # [5, 3]
    expected = [math.sqrt(2 / 4) * math.sin(n * math.pi * 1.5 / 4) / 1.5 for n in (1, 2, 3)]
    torch.testing.assert_close(features[0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-14)
    limit = [math.sqrt(2 / 4) * n * math.pi / 4 for n in (1, 2, 3)]
    torch.testing.assert_close(features[1], torch.tensor(limit, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(features[2], features[0], rtol=0, atol=0)  # even in x
    assert features[3:].abs().max() < 1e-15


def test_gaussian_features_by_hand():
    """Centres in the middle of equal cells of [low, high], width the cell's; clamped past the ends."""
    x = torch.tensor([-1.2, 0.75, 0.25, 9.0], dtype=torch.float64)
    low, high = torch.tensor(-2.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    features = gaussian_features(x, 4, low, high)  # cells of width 1, centres -1.5, -0.5, 0.5, 1.5
    centres = torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64)
    for value, row in zip([-1.2, 0.75, 0.25, 2.0], features):
        torch.testing.assert_close(row, torch.exp(-0.5 * (value - centres) ** 2), rtol=0, atol=1e-15)
    assert [int(torch.argmax(row)) for row in features] == [0, 2, 2, 3]  # the nearest centre; 9 clamped to 2


@pytest.mark.parametrize("basis", ["bessel", "gaussian"])
def test_features_of_the_distance_then_a_then_b(basis):
    radial = RadialFeatures(5, basis, 3.0)
    pair = torch.tensor([[0.6, 0.8], [-1.2, 0.5], [0.0, 0.0]], dtype=torch.float64)  # (a, b); d = 1, 1.3, 0
    features = radial(pair)  # [3, 15]
    assert features.shape == (3, 15) and radial.num_features == 15
    d = torch.tensor([1.0, 1.3, 0.0], dtype=torch.float64)
    if basis == "bessel":
        parts = [bessel_features(v, 5, 3.0) for v in (d, pair[:, 0], pair[:, 1])]
    else:
        zero, cutoff = torch.tensor(0.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
        parts = [gaussian_features(d, 5, zero, cutoff), gaussian_features(pair[:, 0], 5, -cutoff, cutoff),
                 gaussian_features(pair[:, 1], 5, zero, cutoff)]
    torch.testing.assert_close(features, torch.cat(parts, dim=-1), rtol=0, atol=1e-14)
    if basis == "gaussian":  # a's centres span [-c, c]: -2.4, -1.2, 0, 1.2, 2.4, so a = -1.2 sits on the second
        assert features[1, 6] == 1.0 and torch.argmax(features[1, 5:10]) == 1


def test_an_unknown_basis_is_refused():
    with pytest.raises(ValueError, match="radial basis must be one of bessel, gaussian; got 'fourier'"):
        RadialFeatures(4, "fourier", 5.0)


@pytest.mark.parametrize("basis", ["bessel", "gaussian"])
def test_pair_basis_with_radial_features_equals_the_basis_of_all_attributes(basis):
    """`pair_basis` (radial columns joined to the monomials' product) equals `forward` (radial Linear added to the
    tensor-power Linear), and the radial columns change the basis."""
    torch.manual_seed(2)
    kernel_basis = KernelBasis(3, 8, 6, 3, RadialFeatures(4, basis, 2.0)).double()
    pair = torch.randn(3, 40, 2, dtype=torch.float64)  # [B, S, 2]
    pair[..., 1] = pair[..., 1].abs()
    molecule = torch.rand(3, 1, dtype=torch.float64)  # [B, 1]
    expected = kernel_basis(torch.cat([pair, molecule.unsqueeze(1).expand(3, 40, 1)], dim=-1))  # [B, S, K]
    torch.testing.assert_close(kernel_basis.pair_basis(pair, molecule), expected, rtol=0, atol=1e-13)
    with torch.no_grad():
        kernel_basis.radial_linear.weight.zero_()
    assert (kernel_basis.pair_basis(pair, molecule) - expected).abs().max() > 1e-3
