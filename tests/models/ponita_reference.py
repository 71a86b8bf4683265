"""PONITA's forward pass as molgen computed it at commit 860b5b7: the reference the optimised model must equal.

It reads the parameters of a `Ponita` module and follows the paper's formulas literally: pair attributes
[B, N, N, O, 3] with t appended, tensor-power features (D + D² + D³ columns, duplicates included), the kernel
basis MLP, all layers' spatial kernels [B, N, N, O, L, C/g], the spatial sum as a batched product per
(molecule, orientation, kernel) and the spherical convolution as an einsum.
"""

from __future__ import annotations

import torch
from torch import Tensor

from molgen.geometry.centroid import remove_centroid
from molgen.nn.dense import dense_layout, from_dense, to_dense

NUM_FEATURES = 6


def pair_invariants(x: Tensor, grid: Tensor) -> Tensor:
    """(a, b) per ordered pair and orientation. Shapes: x [B, N, 3], grid [O, 3] -> [B, N, N, O, 2]."""
    rel = x.unsqueeze(1) - x.unsqueeze(2)  # [B, N, N, 3]: rel[b, i, j] = x_j - x_i
    a = torch.einsum("bijd,od->bijo", rel, grid)  # [B, N, N, O]
    b = torch.linalg.vector_norm(rel.unsqueeze(3) - a.unsqueeze(-1) * grid, dim=-1)  # [B, N, N, O]
    return torch.stack([a, b], dim=-1)  # [B, N, N, O, 2]


def tensor_powers(v: Tensor, degree: int) -> Tensor:
    """[v, v⊗v, v⊗v⊗v, ...] flattened. Shapes: [..., D] -> [..., D + ... + D^degree]."""
    powers = [v]
    for _ in range(1, degree):
        powers.append((powers[-1].unsqueeze(-1) * v.unsqueeze(-2)).flatten(-2))
    return torch.cat(powers, dim=-1)


def kernel_basis(basis, attributes: Tensor, degree: int) -> Tensor:
    """The basis MLP (molgen.nn.basis.KernelBasis's layers) on the tensor-power features of `attributes`."""
    linear1, act1, linear2, act2 = list(basis.mlp)[1:]
    return act2(linear2(act1(linear1(tensor_powers(attributes, degree)))))


def spatial(f: Tensor, k1: Tensor, g: int) -> Tensor:
    """f1_i(o, c) = Σ_j k1(i, j, o)[c // g] f_j(o, c). Shapes: f [B, N, O, C], k1 [B, N, N, O, C/g] -> [B, N, O, C]."""
    f = f.to(k1.dtype)
    if g == 1:
        return (k1 * f.unsqueeze(1)).sum(dim=2)
    b, n, o, c = f.shape
    k1 = k1.permute(0, 3, 4, 1, 2)  # [B, O, G, N_i, N_j]
    f_j = f.view(b, n, o, c // g, g).permute(0, 2, 3, 1, 4)  # [B, O, G, N_j, g]
    return torch.matmul(k1, f_j).permute(0, 3, 1, 2, 4).reshape(b, n, o, c)


def block(module, f: Tensor, k1: Tensor, spherical_basis: Tensor, g: int) -> Tensor:
    """One ConvNeXt block (molgen.nn.conv.ConvNeXtBlock's parameters) on f [B, N, O, C]."""
    conv = module.conv
    f1 = spatial(f, k1, g)
    k2 = conv.spherical_kernel(spherical_basis)  # [O, O, C]
    f2 = torch.einsum("opc,bioc->bipc", k2, f1) / k2.shape[0] + conv.bias
    update = module.mlp(module.norm(f2))
    if module.layer_scale is not None:
        update = module.layer_scale * update
    return f + update


def reference_forward(model, z_x: Tensor, z_h: Tensor, t: Tensor, layout) -> tuple[Tensor, Tensor]:
    """The 860b5b7 forward pass of `model` (a molgen Ponita) in the inputs' dtype (no autocast)."""
    c = model.config
    dense = dense_layout(layout)
    x = to_dense(z_x, dense)  # [B, N, 3]
    grid = model.grid.to(z_x.dtype)
    attributes = pair_invariants(x, grid)  # [B, N, N, O, 2]
    if c.time_in_basis:
        time = t.to(z_x.dtype).view(-1, 1, 1, 1, 1).expand(*attributes.shape[:-1], 1)
        attributes = torch.cat([attributes, time], dim=-1)  # [B, N, N, O, 3]
    h = to_dense(torch.cat([z_h, t.to(z_h.dtype)[layout.batch].unsqueeze(-1)], dim=-1), dense)  # [B, N, 7]
    basis = kernel_basis(model.spatial_basis, attributes, c.degree)  # [B, N, N, O, K]
    kernels = model.spatial_kernels.linear(basis).unflatten(-1, (c.layers, -1))  # [B, N, N, O, L, C/g]
    spherical_basis = kernel_basis(model.spherical_basis, (grid @ grid.T).unsqueeze(-1), c.degree)  # [O, O, K]
    atom_mask = dense.mask.view(*dense.mask.shape, 1, 1).to(h.dtype)  # [B, N, 1, 1]
    f = model.embed(h).unsqueeze(2).expand(-1, -1, c.orientations, -1) * atom_mask  # [B, N, O, C]
    outputs = []
    for i, module in enumerate(model.blocks):
        f = block(module, f, kernels[..., i, :], spherical_basis, c.channels_per_kernel) * atom_mask
        if c.multiple_readouts:
            outputs.append(model.readouts[i](f))
    if not c.multiple_readouts:
        outputs.append(model.readouts[0](f))
    out = torch.stack(outputs).mean(dim=0)  # [B, N, O, 7]
    eps_h = from_dense(out[..., :NUM_FEATURES].mean(dim=2), dense)  # [M, 6]
    vector = 3.0 * (out[..., NUM_FEATURES:] * grid).mean(dim=2)  # [B, N, 3]
    eps_x = remove_centroid(from_dense(vector, dense), layout.batch, layout.num_molecules)  # [M, 3]
    return eps_x, eps_h
