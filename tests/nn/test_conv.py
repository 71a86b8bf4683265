"""The separable fiber convolution against the formula written out as Python loops, in float64.

The optimised code lays all layers' spatial kernels out as [L, C/g, B·O, N, N] from one matrix product
(`SpatialKernels`) and sums over the sending atoms as a batched matrix product per kernel; the loops below read
the formula of molgen.nn.conv literally, one atom, orientation and channel at a time:
    k1_l(c', o, i, j) = Σ_k W[l·C/g + c', k] · basis(o, i·N + j, k)
    f1_i(o, c) = Σ_j k1_l(c // g, o, i, j) · f_j(o, c)          (j over the real atoms of the molecule)
    f2_i(p, c) = (1/O) Σ_o k2(o, p, c) · f1_i(o, c) + bias_c
g = 1 is PONITA's depthwise convolution (both GPU configurations); g = 8 the CPU configuration's grouping.
"""

from __future__ import annotations

import pytest
import torch

from molgen.nn.conv import ConvNeXtBlock, SeparableFiberConv, SpatialKernels

B, O, N, C, K, L = 2, 3, 4, 16, 5, 2  # molecules, orientations, padded atoms, channels, basis size, layers
NUM_ATOMS = (4, 3)  # the second molecule is padded to N


def _inputs(seed: int = 0):
    """Features f [B, O, N, C] (zero at padded atoms), a spatial basis [B, O, N·N, K] and a spherical basis
    [O, O, K], float64."""
    generator = torch.Generator().manual_seed(seed)
    f = torch.randn(B, O, N, C, generator=generator, dtype=torch.float64)  # [B, O, N, C]
    for b, n in enumerate(NUM_ATOMS):
        f[b, :, n:] = 0.0
    basis = torch.randn(B, O, N * N, K, generator=generator, dtype=torch.float64)  # [B, O, N·N, K]
    spherical_basis = torch.randn(O, O, K, generator=generator, dtype=torch.float64)  # [O, O, K]
    return f, basis, spherical_basis


def _modules(channels_per_kernel: int, seed: int = 0):
    """`SpatialKernels` and one `SeparableFiberConv` with random weights (and a non-zero bias), float64."""
    torch.manual_seed(seed)
    kernels = SpatialKernels(K, L, C // channels_per_kernel).double()
    conv = SeparableFiberConv(C, K, channels_per_kernel).double()
    with torch.no_grad():
        conv.bias.normal_()
    return kernels, conv


def _layer_kernels(kernels: SpatialKernels, basis: torch.Tensor, layer: int) -> torch.Tensor:
    """One layer's spatial kernels as the model takes them. Shapes: basis [B, O, N·N, K] -> [C/g, B·O, N, N]."""
    return kernels(basis).unflatten(-1, (N, N))[layer]  # [C/g, B·O, N, N]


def _naive_conv(f, basis, spherical_basis, kernels, conv, layer):
    """The formula in the module docstring as Python loops over molecules, orientations, atoms and channels.
    Shapes: f [B, O, N, C], basis [B, O, N·N, K], spherical_basis [O, O, K] -> [B, O, N, C] (zero at padding)."""
    g = conv.channels_per_kernel
    weight = kernels.linear.weight.tolist()  # [L·C/g, K]
    k2 = torch.einsum("opk,ck->opc", spherical_basis, conv.spherical_kernel.weight).tolist()  # [O, P, C]
    bias = conv.bias.tolist()  # [C]
    f_list, basis_list = f.tolist(), basis.tolist()
    out = torch.zeros(B, O, N, C, dtype=torch.float64)  # [B, P, N, C]
    for b, n in enumerate(NUM_ATOMS):
        for i in range(n):
            for c in range(C):
                row = weight[layer * (C // g) + c // g]  # [K]: the kernel of channel c
                f1 = []  # f1_i(o, c) for every o
                for o in range(O):
                    total = 0.0
                    for j in range(n):
                        k1 = sum(row[k] * basis_list[b][o][i * N + j][k] for k in range(K))
                        total += k1 * f_list[b][o][j][c]
                    f1.append(total)
                for p in range(O):
                    out[b, p, i, c] = sum(k2[o][p][c] * f1[o] for o in range(O)) / O + bias[c]
    return out


@pytest.mark.parametrize("channels_per_kernel", [1, 8], ids=["depthwise", "grouped"])
@pytest.mark.parametrize("layer", [0, 1])
def test_fiber_conv_equals_the_naive_loop(channels_per_kernel, layer):
    """SpatialKernels -> SeparableFiberConv equals the loops at every real atom to float64 rounding, for the
    depthwise (g = 1) and the grouped (g = 8) spatial convolution and for each layer's block of kernels."""
    f, basis, spherical_basis = _inputs()
    kernels, conv = _modules(channels_per_kernel)
    result = conv(f, _layer_kernels(kernels, basis, layer), spherical_basis)  # [B, O, N, C]
    expected = _naive_conv(f, basis, spherical_basis, kernels, conv, layer)  # [B, O, N, C]
    for b, n in enumerate(NUM_ATOMS):
        torch.testing.assert_close(result[b, :, :n], expected[b, :, :n], rtol=0, atol=1e-12)


def test_depthwise_channels_do_not_mix():
    """With g = 1, changing the input in one channel changes the convolution's output in that channel only."""
    f, basis, spherical_basis = _inputs(seed=1)
    kernels, conv = _modules(1, seed=1)
    k1 = _layer_kernels(kernels, basis, 0)  # [C, B·O, N, N]
    before = conv(f, k1, spherical_basis)  # [B, O, N, C]
    changed = f.clone()
    changed[:, :, : NUM_ATOMS[1], 5] += 1.0
    difference = (conv(changed, k1, spherical_basis) - before).abs().amax(dim=(0, 1, 2))  # [C]
    assert difference[5] > 1e-3
    assert torch.equal(difference[torch.arange(C) != 5], torch.zeros(C - 1, dtype=torch.float64))


def test_spatial_kernels_shape_and_entries():
    """[B, O, S, K] -> [L, C/g, B·O, S], entry (l, c', b·O + o, s) = W[l·C/g + c'] · basis[b, o, s]."""
    kernels = SpatialKernels(K, L, 3).double()
    basis = torch.randn(B, O, 7, K, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    result = kernels(basis)  # [L, 3, B·O, 7]
    assert result.shape == (L, 3, B * O, 7)
    weight = kernels.linear.weight  # [L·3, K]
    for l, c, b, o, s in [(0, 0, 0, 0, 0), (1, 2, 1, 2, 6), (1, 0, 0, 1, 3), (0, 2, 1, 0, 5)]:
        expected = torch.dot(weight[l * 3 + c], basis[b, o, s])
        torch.testing.assert_close(result[l, c, b * O + o, s], expected, rtol=0, atol=1e-14)


def test_fiber_conv_rejects_channels_that_do_not_split_into_groups():
    """C must be a multiple of g: 16 channels cannot share kernels in groups of 3."""
    with pytest.raises(ValueError, match="multiple of channels_per_kernel"):
        SeparableFiberConv(16, K, 3)


@pytest.mark.parametrize("layer_scale", [None, 0.25])
def test_convnext_block_is_the_residual_of_the_mlp_of_the_normalised_conv(layer_scale):
    """The block returns f + γ·MLP(LayerNorm(conv(f))) in shape [B, O, N, C], conv being the naive loop, with
    γ = layer_scale or without one."""
    f, basis, spherical_basis = _inputs(seed=3)
    _, conv = _modules(4, seed=3)
    kernels = SpatialKernels(K, L, C // 4).double()
    block = ConvNeXtBlock(C, K, layer_scale, channels_per_kernel=4).double()
    block.conv.load_state_dict(conv.state_dict())
    result = block(f, _layer_kernels(kernels, basis, 1), spherical_basis)  # [B, O, N, C]
    assert result.shape == (B, O, N, C)
    update = block.mlp(block.norm(_naive_conv(f, basis, spherical_basis, kernels, conv, 1)))  # [B, O, N, C]
    expected = f + (1.0 if layer_scale is None else layer_scale) * update  # [B, O, N, C]
    for b, n in enumerate(NUM_ATOMS):
        torch.testing.assert_close(result[b, :, :n], expected[b, :, :n], rtol=0, atol=1e-12)


def test_convnext_block_known_output_when_the_conv_is_silent():
    """With a zero spherical kernel and bias the conv outputs 0, LayerNorm(0) = 0, GELU(0) = 0, so the block adds
    γ times the last Linear's bias to every atom and orientation: f + 0.5·(1, 2, ..., C)."""
    f, basis, spherical_basis = _inputs(seed=4)
    kernels = SpatialKernels(K, L, C).double()
    block = ConvNeXtBlock(C, K, layer_scale=0.5).double()
    with torch.no_grad():
        block.conv.spherical_kernel.weight.zero_()
        block.conv.bias.zero_()
        block.mlp[0].bias.zero_()
        block.mlp[2].bias.copy_(torch.arange(1.0, C + 1.0))
    result = block(f, _layer_kernels(kernels, basis, 0), spherical_basis)  # [B, O, N, C]
    torch.testing.assert_close(result, f + 0.5 * torch.arange(1.0, C + 1.0, dtype=torch.float64), rtol=0, atol=1e-15)


def test_layer_norm_on_bf16_equals_autocasts_fp32_round_trip():
    """Under bf16 autocast the block normalises the conv's bf16 output in bf16 with fp32 statistics: after the
    next Linear's rounding to bf16 its values are those of autocast's fp32 LayerNorm (no round trip, no change);
    the gradients agree to bf16 precision."""
    torch.manual_seed(0)
    block = ConvNeXtBlock(C, K, layer_scale=None, channels_per_kernel=2)
    for parameter in block.parameters():
        parameter.data += 0.1 * torch.randn_like(parameter)
    x = torch.randn(B, O, N, C, requires_grad=True)  # [B, O, N, C]
    results = []
    for norm in (block._layer_norm, block.norm):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = block.mlp[0](norm(x.bfloat16()))  # [B, O, N, 4C] bf16
        x.grad = None
        hidden.float().square().sum().backward()
        results.append((hidden.detach(), x.grad.clone()))
    (ours, our_grad), (autocast_values, autocast_grad) = results
    assert ours.dtype == autocast_values.dtype == torch.bfloat16
    assert torch.equal(ours, autocast_values)
    assert ((our_grad - autocast_grad).norm() / autocast_grad.norm()).item() < 1e-2
