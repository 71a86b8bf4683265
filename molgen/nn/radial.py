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
TINY = 1e-8
"""Å: the smallest |x| of the Bessel features, whose value there is their limit at 0 (sin(nπx/c)/x = nπ/c·(1 −
O((nπx/c)²)), a relative 1e-16 for n = 16, c = 5 Å)."""


def bessel_features(x: Tensor, count: int, cutoff: float) -> Tensor:
    """√(2/c)·sin(nπ|x|/c)/|x| for n = 1..count, |x| clamped to [TINY, c] (at TINY the value is the limit at 0 to
    float64 rounding; sin and a product are 4x faster than torch.sinc on a CPU). Shapes: x [...] -> [..., count]."""
    frequencies = torch.arange(1, count + 1, dtype=x.dtype, device=x.device) * (math.pi / cutoff)  # [K]
    x = x.abs().clamp(TINY, cutoff)  # [...]
    scale = math.sqrt(2.0 / cutoff) / x  # [...]
    return torch.sin(x.unsqueeze(-1) * frequencies).mul_(scale.unsqueeze(-1))  # [..., K]


def gaussian_features(x: Tensor, count: int, low: Tensor, high: Tensor) -> Tensor:
    """exp(−(x − μ_k)²/(2Δ²)) with μ_k the middles of `count` equal cells of [low, high], Δ their width; low and
    high broadcast with x (one range per variable). Shapes: x [...] -> [..., count]."""
    width = (high - low) / count  # broadcasts with x
    cells = torch.arange(count, dtype=x.dtype, device=x.device) + 0.5  # [K]
    scale = 1.0 / (math.sqrt(2.0) * width)  # broadcasts with x
    centres = (low * scale).unsqueeze(-1) + (width * scale).unsqueeze(-1) * cells  # [..., K]: μ_k/(√2Δ)
    x = torch.minimum(torch.maximum(x, low), high) * scale  # [...]: x/(√2Δ)
    return (x.unsqueeze(-1) - centres).square_().neg_().exp_()  # [..., K]


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
        d = torch.linalg.vector_norm(pair, dim=-1, keepdim=True)  # [..., 1]; its gradient at d = 0 is 0, not NaN
        variables = torch.cat([d, pair], dim=-1)  # [..., 3]: d, a, b
        if self.basis == "bessel":
            features = bessel_features(variables, self.count, self.cutoff)  # [..., 3, K]
        else:
            c = self.cutoff
            low, high = variables.new_tensor([0.0, -c, 0.0]), variables.new_tensor([c, c, c])  # [3]: a is signed
            features = gaussian_features(variables, self.count, low, high)  # [..., 3, K]
        return features.flatten(-2)  # [..., 3K]
