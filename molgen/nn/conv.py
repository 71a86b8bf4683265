"""The separable group convolution on R^3 x S^2 and the ConvNeXt block around it (Bekkers et al. 2024).

Features live on atoms and orientations: f [B, N, O, C] (dense molecule blocks, padding masked).
(1) spatial, depthwise:   f1_i(o, c) = Σ_j k1_c(basis(a_ij(o), b_ij(o))) · f_j(o, c)     (j over the molecule)
(2) spherical, depthwise: f2_i(p, c) = (1/O) Σ_o k2_c(basis(oᵀp)) · f1_i(o, c)
(3) bias.  Channels mix only in the ConvNeXt block's MLP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SeparableFiberConv(nn.Module):
    """Depthwise spatial convolution over each molecule, then depthwise spherical convolution, then a bias."""

    def __init__(self, channels: int, basis_dim: int) -> None:
        super().__init__()
        self.spatial_kernel = nn.Linear(basis_dim, channels, bias=False)
        self.spherical_kernel = nn.Linear(basis_dim, channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, f: Tensor, spatial_basis: Tensor, spherical_basis: Tensor) -> Tensor:
        """Shapes: f [B, N, O, C] (zero at padded atoms), spatial_basis [B, N, N, O, K],
        spherical_basis [O, O, K] -> [B, N, O, C]."""
        k1 = self.spatial_kernel(spatial_basis)  # [B, N, N, O, C]
        f1 = torch.einsum("bijoc,bjoc->bioc", k1, f)  # [B, N, O, C]
        k2 = self.spherical_kernel(spherical_basis)  # [O, O, C]  (o -> p)
        f2 = torch.einsum("opc,bioc->bipc", k2, f1) / k2.shape[0]  # [B, N, O, C]
        return f2 + self.bias  # [B, N, O, C]


class ConvNeXtBlock(nn.Module):
    """f + γ · Linear(GELU(Linear(LayerNorm(conv(f))))) with a 4x wider hidden layer; γ optional (layer scale)."""

    def __init__(self, channels: int, basis_dim: int, layer_scale: float | None, expansion: int = 4) -> None:
        super().__init__()
        self.conv = SeparableFiberConv(channels, basis_dim)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, expansion * channels), nn.GELU(), nn.Linear(expansion * channels, channels)
        )
        self.layer_scale = None if layer_scale is None else nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, f: Tensor, spatial_basis: Tensor, spherical_basis: Tensor) -> Tensor:
        """Shapes: f [B, N, O, C] -> [B, N, O, C]."""
        update = self.mlp(self.norm(self.conv(f, spatial_basis, spherical_basis)))  # [B, N, O, C]
        if self.layer_scale is not None:
            update = self.layer_scale * update  # [B, N, O, C]
        return f + update  # [B, N, O, C]
