"""Radial features of an atom pair for PONITA's spatial basis: K functions each of the distance d = ‖x_j − x_i‖
and of the pair invariants a and b (molgen.geometry.invariants), in Å.

- `bessel`: e_n(x) = √(2/c)·sin(nπx/c)/x, n = 1..K, the radial Bessel basis of DimeNet (Gasteiger, Groß &
  Günnemann, ICLR 2020), also PaiNN's (Schütt, Unke & Gastegger, ICML 2021). It is finite at x = 0
  (√(2/c)·nπ/c) and even in x, so for the signed a it is a function of |a| (the polynomial features keep a's sign).
- `gaussian`: exp(−(x − μ_k)²/(2Δ²)), SchNet's radial basis (Schütt et al., NeurIPS 2017), K centres μ_k in
  the middle of K equal cells of [0, c] ([−c, c] for a), Δ the cell width.

c is the cutoff: x is clamped to [−c, c] first, so past it the Bessel features are 0 (as DimeNet's are past its
cutoff) and the Gaussian ones those at c. The graph stays fully connected: the polynomial features see every pair.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

RADIAL_BASES = ("bessel", "gaussian")


def bessel_features(x: Tensor, count: int, cutoff: float) -> Tensor:
    """√(2/c)·sin(nπx/c)/x = √(2/c)·(nπ/c)·sinc(nx/c) for n = 1..count. Shapes: x [...] -> [..., count]."""
    n = torch.arange(1, count + 1, dtype=x.dtype, device=x.device)  # [K]
    x = x.clamp(-cutoff, cutoff).unsqueeze(-1)  # [..., 1]
    return math.sqrt(2.0 / cutoff) * (n * math.pi / cutoff) * torch.sinc(n * x / cutoff)  # [..., K]


def gaussian_features(x: Tensor, count: int, low: float, high: float) -> Tensor:
    """exp(−(x − μ_k)²/(2Δ²)) with μ_k the middles of `count` equal cells of [low, high], Δ their width.
    Shapes: x [...] -> [..., count]."""
    width = (high - low) / count
    centres = low + width * (torch.arange(count, dtype=x.dtype, device=x.device) + 0.5)  # [K]
    x = x.clamp(low, high).unsqueeze(-1)  # [..., 1]
    return torch.exp(-0.5 * ((x - centres) / width) ** 2)  # [..., K]


class RadialFeatures(nn.Module):
    """K `bessel` or `gaussian` features each of d, a and b (no parameters).

    Shapes: pair [..., 2] (a, b) -> [..., 3K] (d's features, then a's, then b's).
    """

    def __init__(self, count: int, basis: str, cutoff: float) -> None:
        super().__init__()
        if basis not in RADIAL_BASES:
            raise ValueError(f"radial basis must be one of {', '.join(RADIAL_BASES)}; got {basis!r}")
        self.count, self.basis, self.cutoff = count, basis, cutoff

    @property
    def num_features(self) -> int:
        return 3 * self.count

    def forward(self, pair: Tensor) -> Tensor:
        d = torch.linalg.vector_norm(pair, dim=-1)  # [...]; its gradient at d = 0 (self-loops) is 0, not NaN
        a, b = pair.unbind(-1)  # [...] each
        c = self.cutoff
        if self.basis == "bessel":
            features = [bessel_features(x, self.count, c) for x in (d, a, b)]  # 3 x [..., K]
        else:
            features = [gaussian_features(d, self.count, 0.0, c), gaussian_features(a, self.count, -c, c),
                        gaussian_features(b, self.count, 0.0, c)]  # 3 x [..., K]
        return torch.cat(features, dim=-1)  # [..., 3K]
