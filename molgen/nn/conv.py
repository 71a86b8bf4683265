"""The separable group convolution on R^3 x S^2 and the ConvNeXt block around it (Bekkers et al. 2024).

Features live on orientations and atoms: f [B, O, N, C] (dense molecule blocks, padding masked), orientation
first so that every pair tensor, [B, O, N_i, N_j, ...], is a batch of [N, N] blocks per (molecule, orientation).
(1) spatial:   f1_i(o, c) = Σ_j k1_{c/g}(basis(a_ij(o), b_ij(o))) · f_j(o, c)     (j over the molecule)
(2) spherical, depthwise: f2_i(p, c) = (1/O) Σ_o k2_c(basis(oᵀp)) · f1_i(o, c)
(3) bias.  Channels mix only in the ConvNeXt block's MLP.
In (1) each spatial kernel serves g consecutive channels (`channels_per_kernel`); g = 1 is PONITA's depthwise
convolution. The sum over j is a batched matrix product [N, N] @ [N, g] per (kernel, molecule, orientation).
All layers' kernels come from one matrix product, laid out [L, C/g, B·O, N, N] so that each layer's is a
contiguous block in the layout of that product: no pair tensor is ever transposed or copied. On a CPU, where
these steps are bound by memory traffic, that is the main lever on speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SeparableFiberConv(nn.Module):
    """Spatial convolution over each molecule (one kernel per `channels_per_kernel` channels), then depthwise
    spherical convolution, then a bias.

    The spatial kernels k1 = Linear(basis) come from the model's `SpatialKernels`; the spherical kernel is this
    layer's own.
    """

    def __init__(self, channels: int, basis_dim: int, channels_per_kernel: int = 1) -> None:
        super().__init__()
        if channels % channels_per_kernel:
            raise ValueError(f"channels ({channels}) must be a multiple of channels_per_kernel ({channels_per_kernel})")
        self.channels_per_kernel = channels_per_kernel
        self.spherical_kernel = nn.Linear(basis_dim, channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, f: Tensor, spatial_kernel: Tensor, spherical_basis: Tensor) -> Tensor:
        """Shapes: f [B, O, N, C] (zero at padded atoms), spatial_kernel [C/g, B·O, N, N],
        spherical_basis [O, O, K] -> [B, O, N, C]."""
        f1 = self._spatial(f, spatial_kernel)  # [B, O, N, C]
        k2 = self.spherical_kernel(spherical_basis)  # [O, P, C]  (o -> p)
        return spherical(f1, k2) + self.bias.to(k2.dtype)  # [B, O, N, C], in the kernels' (autocast) dtype

    def _spatial(self, f: Tensor, k1: Tensor) -> Tensor:
        """f1_i(o, c) = Σ_j k1(c // g, o, i, j) · f_j(o, c). Shapes: f [B, O, N, C], k1 [C/g, B·O, N, N]
        -> [B, O, N, C]."""
        b, o, n, c = f.shape
        g = self.channels_per_kernel
        f_j = f.to(k1.dtype).reshape(b * o, n, c // g, g).permute(2, 0, 1, 3)  # [C/g, B·O, N_j, g]
        f1 = torch.matmul(k1, f_j)  # [C/g, B·O, N_i, g]
        return f1.permute(1, 2, 0, 3).reshape(b, o, n, c)  # [B, O, N, C]


def spherical(f1: Tensor, k2: Tensor) -> Tensor:
    """f2(p, c) = (1/O) Σ_o k2(o, p, c) · f1(o, c), depthwise in c. Shapes: f1 [B, O, N, C], k2 [O, P, C]
    -> [B, P, N, C]."""
    return torch.einsum("opc,bonc->bpnc", k2, f1.to(k2.dtype)) / k2.shape[0]  # [B, P, N, C]


class SpatialKernels(nn.Module):
    """The spatial kernels of all layers from the shared basis in one matrix product: Linear(K -> L·C/g).

    Shapes: basis [B, O, S, K] (S pairs per molecule and orientation) -> [L, C/g, B·O, S].
    """

    def __init__(self, basis_dim: int, layers: int, kernels_per_layer: int) -> None:
        super().__init__()
        self.layers, self.kernels_per_layer = layers, kernels_per_layer
        self.linear = nn.Linear(basis_dim, layers * kernels_per_layer, bias=False)

    def forward(self, basis: Tensor) -> Tensor:
        b, o, s, k = basis.shape
        weight = self.linear.weight.to(basis.dtype)  # [L·C/g, K]
        kernels = weight @ basis.reshape(b * o * s, k).T  # [L·C/g, B·O·S]
        return kernels.view(self.layers, self.kernels_per_layer, b * o, s)  # [L, C/g, B·O, S]


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
        """Shapes: f [B, O, N, C], spatial_kernel [C/g, B·O, N, N], spherical_basis [O, O, K] -> [B, O, N, C]."""
        update = self.mlp(self._layer_norm(self.conv(f, spatial_kernel, spherical_basis)))  # [B, O, N, C]
        if self.layer_scale is not None:
            update = self.layer_scale * update  # [B, O, N, C]
        return f + update  # [B, O, N, C]

    def _layer_norm(self, x: Tensor) -> Tensor:
        """LayerNorm in x's own dtype. Under bf16 autocast x is bf16 and the norm runs on it with fp32 statistics
        (PyTorch's mixed-dtype kernel), returning bf16: the values of autocast's fp32 round trip once the next
        Linear rounds them to bf16, without its two casts (forward and backward). Shapes: [..., C] -> [..., C]."""
        with torch.autocast(x.device.type, enabled=False):
            return F.layer_norm(x, x.shape[-1:], self.norm.weight, self.norm.bias, self.norm.eps)  # [..., C]
