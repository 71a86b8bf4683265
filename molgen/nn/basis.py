"""PONITA's kernel bases: polynomial features of the invariant attributes followed by a small MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn


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

    Shapes: attributes [..., D] -> [..., basis_dim].
    """

    def __init__(self, attribute_dim: int, hidden: int, basis_dim: int, degree: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            PolynomialFeatures(degree),
            nn.Linear(PolynomialFeatures.num_features(attribute_dim, degree), hidden),
            nn.GELU(),
            nn.Linear(hidden, basis_dim),
            nn.GELU(),
        )

    def forward(self, attributes: Tensor) -> Tensor:
        return self.mlp(attributes)  # [..., basis_dim]
