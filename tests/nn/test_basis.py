"""Kernel bases: the tensor-power polynomial features and their exponents, the basis MLP, and `pair_basis`, which
must equal the basis of the concatenated attributes without building the tensor powers."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.nn.basis import KernelBasis, PolynomialFeatures, monomial_fold, monomials, tensor_power_exponents


def test_tensor_power_exponents_list_the_columns_in_order():
    """On (u, v) to degree 2 the columns are u, v, u·u, u·v, v·u, v·v: duplicates kept, tensor-power order."""
    assert tensor_power_exponents(2, 2) == [(1, 0), (0, 1), (2, 0), (1, 1), (1, 1), (0, 2)]
    assert len(tensor_power_exponents(3, 3)) == PolynomialFeatures.num_features(3, 3) == 3 + 9 + 27


def test_polynomial_features_known_values():
    """(2, 3) to degree 2 -> (2, 3, 4, 6, 6, 9); to degree 3 the last 8 columns are the products of three."""
    v = torch.tensor([2.0, 3.0], dtype=torch.float64)
    assert PolynomialFeatures(2)(v).tolist() == [2.0, 3.0, 4.0, 6.0, 6.0, 9.0]
    assert PolynomialFeatures(3)(v)[6:].tolist() == [8.0, 12.0, 12.0, 18.0, 12.0, 18.0, 18.0, 27.0]


def test_polynomial_features_are_the_monomials_of_their_exponents():
    """Every column f equals Π_d v_d^e_fd for the exponents `tensor_power_exponents` gives it (batched input)."""
    v = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # [4, 5, 3]
    features = PolynomialFeatures(3)(v)  # [4, 5, 39]
    exponents = torch.tensor(tensor_power_exponents(3, 3), dtype=torch.float64)  # [39, 3]
    expected = (v.unsqueeze(-2) ** exponents).prod(-1)  # [4, 5, 39]
    torch.testing.assert_close(features, expected, rtol=1e-13, atol=1e-13)


def test_polynomial_features_reject_degree_zero():
    """Degree 0 would give no features."""
    with pytest.raises(ValueError, match="degree"):
        PolynomialFeatures(0)


def test_monomials_known_values():
    """Π_p v_p^e_p for (2, 3): 1, 2, 3, 2²·3 = 12, 3³ = 27."""
    v = torch.tensor([[2.0, 3.0]], dtype=torch.float64)  # [1, 2]
    result = monomials(v, [(0, 0), (1, 0), (0, 1), (2, 1), (0, 3)])  # [1, 5]
    assert result.tolist() == [[1.0, 2.0, 3.0, 12.0, 27.0]]


def test_monomial_fold_maps_each_column_to_one_product_of_distinct_monomials():
    """For (a, b, t) to degree 3: 9 distinct monomials of (a, b) besides the constant, 4 of t (with the constant),
    and each of the 39 tensor-power columns is exactly one pair monomial times one molecule monomial of total
    degree at most 3."""
    pair, molecule, fold = monomial_fold(3, 3, 2)
    assert len(pair) == 10 and pair[0] == (0, 0)
    assert molecule == [(0,), (1,), (2,), (3,)]
    assert fold.shape == (39, 10, 4)
    assert torch.equal(fold.sum(dim=(1, 2)), torch.ones(39, dtype=torch.float64))
    for f, exponents in enumerate(tensor_power_exponents(3, 3)):
        q, r = (int(i) for i in fold[f].nonzero()[0])
        assert pair[q] + molecule[r] == exponents


def _gelu(x: float) -> float:
    """GELU(x) = x Φ(x) (PyTorch's exact form)."""
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_kernel_basis_known_values():
    """Two attributes (u, v), degree 2, hidden 2, one basis function, small fixed weights: by hand,
    features (u, v, u², uv, vu, v²), h = GELU(W1·features + b1), basis = GELU(W2·h + b2)."""
    basis = KernelBasis(2, 2, 1, 2).double()
    w1 = [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 1.0, 0.25, 0.25, -0.5]]
    b1, w2, b2 = [0.25, 0.5], [2.0, -1.0], -0.5
    with torch.no_grad():
        basis.mlp[1].weight.copy_(torch.tensor(w1))
        basis.mlp[1].bias.copy_(torch.tensor(b1))
        basis.mlp[3].weight.copy_(torch.tensor([w2]))
        basis.mlp[3].bias.fill_(b2)
    attributes = [(0.5, -1.0), (-1.0, 2.0)]
    expected = []
    for u, v in attributes:
        features = [u, v, u * u, u * v, v * u, v * v]
        hidden = [_gelu(sum(w * f for w, f in zip(row, features)) + b) for row, b in zip(w1, b1)]
        expected.append(_gelu(sum(w * h for w, h in zip(w2, hidden)) + b2))
    assert expected[0] > 0.5 and expected[1] < -0.05  # both signs of the last GELU's input are exercised
    result = basis(torch.tensor(attributes, dtype=torch.float64))  # [2, 1]
    assert result.shape == (2, 1)
    torch.testing.assert_close(result[:, 0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize("num_molecule", [1, 0], ids=["with-time", "without-time"])
def test_pair_basis_equals_the_tensor_power_features(num_molecule):
    """`pair_basis(pair, molecule)` equals the basis of [pair, molecule broadcast to every pair] to float64 rounding,
    with the time as a molecule variable (time_in_basis) and with none."""
    torch.manual_seed(1)
    basis = KernelBasis(2 + num_molecule, 8, 6, 3).double()
    pair = torch.randn(4, 50, 2, dtype=torch.float64)  # [B, S, 2]
    molecule = torch.rand(4, num_molecule, dtype=torch.float64)  # [B, 1] or [B, 0]
    expected = basis(torch.cat([pair, molecule.unsqueeze(1).expand(4, 50, num_molecule)], dim=-1))  # [B, S, K]
    torch.testing.assert_close(basis.pair_basis(pair, molecule), expected, rtol=0, atol=1e-13)


def test_pair_basis_rejects_the_wrong_number_of_attributes():
    """Two pair variables and two molecule variables do not fit a basis of three attributes."""
    basis = KernelBasis(3, 8, 6, 3).double()
    with pytest.raises(ValueError, match="expected 3 attributes"):
        basis.pair_basis(torch.zeros(1, 4, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
