"""PONITA's kernel bases: polynomial features of the invariant attributes followed by a small MLP.

The polynomial features are tensor powers [v, v⊗v, v⊗v⊗v] (D + D² + D³ columns, as the PONITA authors write
them), so one monomial appears in several columns. For the spatial basis, whose attributes are a pair's (a, b)
and its molecule's time t, `KernelBasis.pair_basis` computes exactly the same function without building them:
the first Linear is linear in the features, so W·poly(a, b, t) + β = Σ_q m_q(a, b)·C_q(t) + C_0(t), where m_q
runs over the distinct monomials of (a, b) (9 for degree 3) and C_q(t) = Σ_k t^k Σ_{columns f of a^i b^j t^k}
W[:, f] is computed once per molecule. Over all pairs this is a 9-wide product instead of a 39-wide tensor
(and its 3-, 9- and 27-wide factors); the parameters, and so the checkpoints, stay those of the tensor powers.

Optionally (`radial`) the first Linear also takes radial features of the pair (molgen.nn.radial) as more input
columns, held apart (`radial_linear`, no bias) so that a model without them keeps its parameters; in `pair_basis`
they join the monomials in the same product.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from molgen.nn.radial import RadialFeatures


def tensor_power_exponents(dim: int, degree: int) -> list[tuple[int, ...]]:
    """The exponent vector of every column of `PolynomialFeatures(degree)` on D = dim variables, in its order."""
    unit = [tuple(int(d == e) for e in range(dim)) for d in range(dim)]
    powers = [unit]
    for _ in range(1, degree):
        powers.append([tuple(p + u for p, u in zip(prev, unit[d])) for prev in powers[-1] for d in range(dim)])
    return [exponents for power in powers for exponents in power]


class PolynomialFeatures(nn.Module):
    """All monomials up to `degree` as tensor powers: [v, v⊗v, v⊗v⊗v, ...] flattened.

    Shapes: v [..., D] -> [..., D + D² + ... + D^degree].
    """

    def __init__(self, degree: int) -> None:
        super().__init__()
        if degree < 1:
            raise ValueError(f"degree must be >= 1, got {degree}")
        self.degree = degree

    @staticmethod
    def num_features(dim: int, degree: int) -> int:
        """D + D² + ... + D^degree."""
        return sum(dim**k for k in range(1, degree + 1))

    def forward(self, v: Tensor) -> Tensor:
        powers = [v]  # [..., D^k] for k = 1..degree
        for _ in range(1, self.degree):
            powers.append((powers[-1].unsqueeze(-1) * v.unsqueeze(-2)).flatten(-2))  # [..., D^(k+1)]
        return torch.cat(powers, dim=-1)  # [..., sum_k D^k]


class KernelBasis(nn.Module):
    """Invariant attributes -> a kernel basis shared by all layers: polynomial features, Linear, GELU, Linear, GELU.

    With `radial`, its features of the first two attributes (a, b) are more inputs of the first Linear.
    Shapes: attributes [..., D] -> [..., basis_dim].
    """

    def __init__(self, attribute_dim: int, hidden: int, basis_dim: int, degree: int,
                 radial: RadialFeatures | None = None) -> None:
        super().__init__()
        self.attribute_dim, self.degree = attribute_dim, degree
        self.mlp = nn.Sequential(
            PolynomialFeatures(degree),
            nn.Linear(PolynomialFeatures.num_features(attribute_dim, degree), hidden),
            nn.GELU(),
            nn.Linear(hidden, basis_dim),
            nn.GELU(),
        )
        self.radial = radial
        self.radial_linear = None if radial is None else nn.Linear(radial.num_features, hidden, bias=False)
        # pair_basis's monomials and fold for every split of the attributes, resolved here (not in traced code)
        self.folds = {p: monomial_fold(attribute_dim, degree, p) for p in range(attribute_dim + 1)}

    def forward(self, attributes: Tensor) -> Tensor:
        hidden = self.mlp[1](self.mlp[0](attributes))  # [..., hidden]
        if self.radial is not None:
            hidden = hidden + self.radial_linear(self.radial(attributes[..., :2]))  # [..., hidden]
        return self.mlp[2:](hidden)  # [..., basis_dim]

    def pair_basis(self, pair: Tensor, molecule: Tensor) -> Tensor:
        """The basis of the attributes [pair variables, molecule variables] without the tensor powers.

        Equal to `forward(cat([pair, molecule broadcast to every pair], -1))` (see the module docstring).
        Shapes: pair [B, S, P] (S pairs per molecule), molecule [B, D - P] -> [B, S, basis_dim].
        """
        num_pair = pair.shape[-1]
        if num_pair + molecule.shape[-1] != self.attribute_dim:
            raise ValueError(f"expected {self.attribute_dim} attributes, got {num_pair} + {molecule.shape[-1]}")
        pair_exponents, molecule_exponents, fold = self.folds[num_pair]
        first, rest = self.mlp[1], self.mlp[2:]
        fold = fold.to(device=molecule.device, dtype=molecule.dtype)  # [F, Q + 1, R]
        weight, bias = first.weight.to(molecule.dtype), first.bias.to(molecule.dtype)  # [H, F], [H]
        coefficients = torch.einsum("fqr,br,hf->bqh", fold, monomials(molecule, molecule_exponents), weight)
        constant = coefficients[:, :1] + bias  # [B, 1, H]: C_0(t) + β
        values, coefficients = monomials(pair, pair_exponents[1:]), coefficients[:, 1:]  # [B, S, Q], [B, Q, H]
        if self.radial is not None:
            values = torch.cat([values, self.radial(pair)], dim=-1)  # [B, S, Q + R]
            radial = self.radial_linear.weight.to(coefficients.dtype).T  # [R, H]
            coefficients = torch.cat([coefficients, radial.expand(len(coefficients), -1, -1)], dim=1)  # [B, Q + R, H]
        hidden = torch.baddbmm(constant, values, coefficients)  # [B, S, H]
        return rest(hidden)  # [B, S, basis_dim]


@functools.cache
def monomial_fold(dim: int, degree: int, num_pair: int) -> tuple[list, list, Tensor]:
    """The distinct exponent vectors of the first `num_pair` variables (the constant first) and of the others,
    and fold [F, Q + 1, R], 1 where tensor-power column f is pair monomial q times molecule monomial r."""
    exponents = tensor_power_exponents(dim, degree)
    by_degree = lambda e: (sum(e), e)  # noqa: E731
    pair = sorted({e[:num_pair] for e in exponents} | {(0,) * num_pair}, key=by_degree)
    molecule = sorted({e[num_pair:] for e in exponents} | {(0,) * (dim - num_pair)}, key=by_degree)
    fold = torch.zeros(len(exponents), len(pair), len(molecule), dtype=torch.float64)  # [F, Q + 1, R]
    for f, e in enumerate(exponents):
        fold[f, pair.index(e[:num_pair]), molecule.index(e[num_pair:])] = 1.0
    return pair, molecule, fold


def monomials(v: Tensor, exponents: list[tuple[int, ...]]) -> Tensor:
    """Π_p v_p^e_p for each exponent vector e. Shapes: v [..., P] -> [..., len(exponents)]."""
    ones = v.new_ones(v.shape[:-1])  # [...]
    top = max([0, *(k for e in exponents for k in e)])  # the highest power (no max(default=): torch.compile)
    powers = []  # powers[p][k] = v_p^k
    for p in range(v.shape[-1]):
        powers.append([ones])
        for _ in range(top):
            powers[p].append(powers[p][-1] * v[..., p])  # [...]
    columns = []
    for e in exponents:
        factors = [powers[p][k] for p, k in enumerate(e) if k]
        columns.append(functools.reduce(torch.mul, factors) if factors else ones)  # [...]
    return torch.stack(columns, dim=-1)  # [..., len(exponents)]
