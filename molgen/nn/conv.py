"""The separable group convolution on R^3 x S^2 and the ConvNeXt block around it (Bekkers et al. 2024).

Features live on atoms and orientations: f [B, N, O, C] (dense molecule blocks, padding masked).
(1) spatial:   f1_i(o, c) = Σ_j k1_{c/g}(basis(a_ij(o), b_ij(o))) · f_j(o, c)     (j over the molecule)
(2) spherical, depthwise: f2_i(p, c) = (1/O) Σ_o k2_c(basis(oᵀp)) · f1_i(o, c)
(3) bias.  Channels mix only in the ConvNeXt block's MLP.
In (1) each spatial kernel serves g consecutive channels (`channels_per_kernel`); g = 1 is PONITA's depthwise
convolution. With g > 1 the sum over j is a batched matrix product [N, N] @ [N, g] per (molecule,
orientation, kernel) and the kernel tensor [B, N, N, O, C/g] is g times smaller: on a CPU, where this step
is bound by memory traffic, that is the main lever on speed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SeparableFiberConv(nn.Module):
    """Spatial convolution over each molecule (one kernel per `channels_per_kernel` channels), then depthwise
    spherical convolution, then a bias.

    The spatial kernels k1 = Linear(basis) of all layers are computed by the model in one matrix product
    (`SpatialKernels`) and passed in; the spherical kernel is this layer's own.
    """

    def __init__(self, channels: int, basis_dim: int, channels_per_kernel: int = 1) -> None:
        super().__init__()
        if channels % channels_per_kernel:
            raise ValueError(f"channels ({channels}) must be a multiple of channels_per_kernel ({channels_per_kernel})")
        self.channels_per_kernel = channels_per_kernel
        self.spherical_kernel = nn.Linear(basis_dim, channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, f: Tensor, spatial_kernel: Tensor, spherical_basis: Tensor) -> Tensor:
        """Shapes: f [B, N, O, C] (zero at padded atoms), spatial_kernel [B, N, N, O, C/g],
        spherical_basis [O, O, K] -> [B, N, O, C]."""
        f1 = self._spatial(f, spatial_kernel)  # [B, N, O, C]
        k2 = self.spherical_kernel(spherical_basis)  # [O, O, C]  (o -> p)
        f2 = torch.einsum("opc,bioc->bipc", k2, f1) / k2.shape[0]  # [B, N, O, C]
        return f2 + self.bias  # [B, N, O, C]

    def _spatial(self, f: Tensor, k1: Tensor) -> Tensor:
        """f1_i(o, c) = Σ_j k1(i, j, o)[c // g] · f_j(o, c). Shapes: f [B, N, O, C], k1 [B, N, N, O, C/g]
        -> [B, N, O, C]."""
        f = f.to(k1.dtype)
        g = self.channels_per_kernel
        if g == 1:
            return (k1 * f.unsqueeze(1)).sum(dim=2)  # [B, N, O, C]: sum over senders j
        b, n, o, c = f.shape
        k1 = k1.permute(0, 3, 4, 1, 2)  # [B, O, G, N_i, N_j]
        f_j = f.view(b, n, o, c // g, g).permute(0, 2, 3, 1, 4)  # [B, O, G, N_j, g]
        f1 = torch.matmul(k1, f_j)  # [B, O, G, N_i, g]
        return f1.permute(0, 3, 1, 2, 4).reshape(b, n, o, c)  # [B, N, O, C]


class SpatialKernels(nn.Module):
    """The spatial kernels of all layers from the shared basis in one matrix product: Linear(K -> L·C/g).

    Shapes: basis [B, N, N, O, K] -> [B, N, N, O, L, C/g].
    """

    def __init__(self, basis_dim: int, layers: int, kernels_per_layer: int) -> None:
        super().__init__()
        self.layers, self.kernels_per_layer = layers, kernels_per_layer
        self.linear = nn.Linear(basis_dim, layers * kernels_per_layer, bias=False)

    def forward(self, basis: Tensor) -> Tensor:
        return self.linear(basis).unflatten(-1, (self.layers, self.kernels_per_layer))  # [B, N, N, O, L, C/g]


class ConvNeXtBlock(nn.Module):
    """f + γ · Linear(GELU(Linear(LayerNorm(conv(f))))) with a 4x wider hidden layer; γ optional (layer scale)."""

    def __init__(self, channels: int, basis_dim: int, layer_scale: float | None, channels_per_kernel: int = 1,
                 expansion: int = 4) -> None:
        super().__init__()
        self.conv = SeparableFiberConv(channels, basis_dim, channels_per_kernel)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, expansion * channels), nn.GELU(), nn.Linear(expansion * channels, channels)
        )
        self.layer_scale = None if layer_scale is None else nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, f: Tensor, spatial_kernel: Tensor, spherical_basis: Tensor) -> Tensor:
        """Shapes: f [B, N, O, C], spatial_kernel [B, N, N, O, C/g], spherical_basis [O, O, K] -> [B, N, O, C]."""
        update = self.mlp(self.norm(self.conv(f, spatial_kernel, spherical_basis)))  # [B, N, O, C]
        if self.layer_scale is not None:
            update = self.layer_scale * update  # [B, N, O, C]
        return f + update  # [B, N, O, C]
