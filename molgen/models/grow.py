"""Function-preserving growth of a trained PONITA (Net2Net: Chen, Goodfellow & Shlens, ICLR 2016).

Deepening appends ConvNeXt blocks whose last MLP Linear is zero, so each new block is the identity (its residual
update is 0); the rest of a new block, its spatial-kernel rows included, is a fresh initialisation, so training
moves it at once. With `multiple_readouts` the readouts are averaged: the new ones start at zero and the old ones'
weights and biases are scaled by L_new / L_old, which keeps the average. The all-layers spatial-kernel matrix has
its rows laid out [L, C/g] (molgen.nn.conv.SpatialKernels): the new layers' rows are appended.

Widening by k (C -> kC, g unchanged) copies every channel k times in place (channel c becomes kc, ..., kc + k - 1;
so does every hidden unit of the MLPs): weights that produce a channel are copied, weights that consume one are
split (divided by k), so each sum over copies gives back the original. LayerNorm's mean and variance over k equal
copies are the old ones. New channel c' is spatially convolved with kernel c' // g; all its copies came from old
channel c' // k, whose kernel c' // (kg) is new kernel row (c' // g) // k: each layer's kernel rows are copied k
times in place.

Copies with equal incoming weights stay equal under AdamW whatever their outgoing split (Adam is scale-invariant
per parameter), so `noise_scale` > 0 adds Gaussian noise of that many standard deviations of each tensor to the
incoming weights (embedding, spherical kernels, both MLP Linears), centred over each unit's k copies. Centred
noise changes no sum over copies, and the consumers of copies only sum them (with equal weights) or, in
LayerNorm and GELU, see them at second order: the function changes by O(noise_scale²), not O(noise_scale).

Adding radial features (`Radial`: PonitaConfig.radial_features, molgen.nn.radial) to a model without them gives
the spatial basis's first layer new input columns (RADIAL) that start at zero, so the function is unchanged while
their gradients are not zero: training starts to use them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from molgen.models.ponita import PonitaConfig
from molgen.nn.conv import ConvNeXtBlock, SpatialKernels
from molgen.nn.radial import RadialFeatures

State = dict[str, Tensor]

COPIED_ROWS = re.compile(r"embed\.weight|blocks\.\d+\.(conv\.spherical_kernel\.weight|conv\.bias|norm\.(weight|bias)"
                         r"|mlp\.[02]\.(weight|bias)|layer_scale)")
"""Tensors whose rows (dim 0) are channels or MLP hidden units: copied k times in place."""
SPLIT_COLUMNS = re.compile(r"blocks\.\d+\.mlp\.[02]\.weight|readouts\.\d+\.weight")
"""Tensors whose columns (dim 1) consume channels or hidden units: copied k times in place and divided by k."""
NOISY = re.compile(r"embed\.weight|blocks\.\d+\.(conv\.spherical_kernel|mlp\.[02])\.weight")
"""The incoming weights that get the symmetry-breaking noise."""
KERNELS = "spatial_kernels.linear.weight"
RADIAL = "spatial_basis.radial_linear.weight"


@dataclass(frozen=True)
class Radial:
    """Radial features to add: K per variable, the basis and the cutoff in Å (PonitaConfig's radial_* fields)."""

    features: int
    basis: str
    cutoff: float


def grown_config(config: PonitaConfig, layers: int, hidden: int, radial: Radial | None = None) -> PonitaConfig:
    """The config of the grown model; ValueError (one line) when it is not a growth of `config`."""
    if layers < config.layers:
        raise ValueError(f"--layers {layers} is fewer than the model's {config.layers} layers (growth only adds)")
    if hidden < config.hidden or hidden % config.hidden:
        raise ValueError(f"--hidden {hidden} is not a multiple of the model's width {config.hidden}")
    if radial is not None and config.radial_features:
        raise ValueError(f"the model already has radial features ({config.radial_features} per variable)")
    if radial is not None and radial.features < 1:
        raise ValueError(f"--radial-features must be at least 1, got {radial.features}")
    if (layers, hidden) == (config.layers, config.hidden) and radial is None:
        raise ValueError(f"nothing to grow: the model already has {layers} layers of width {hidden}")
    grown = replace(config, layers=layers, hidden=hidden)
    if radial is None:
        return grown
    return replace(grown, radial_features=radial.features, radial_basis=radial.basis, radial_cutoff=radial.cutoff)


@dataclass(frozen=True)
class PonitaGrowth:
    """One growth, applied alike to the weights and to every EMA of a model (`apply`).

    Attributes:
        old, new: the configs before and after.
        fresh: the new blocks and their spatial-kernel rows, newly initialised (`fresh_layers`).
        noise: the symmetry-breaking noise, by tensor name, in the widened shapes (empty: none).
    """

    old: PonitaConfig
    new: PonitaConfig
    fresh: State
    noise: State

    @classmethod
    def plan(cls, config: PonitaConfig, weights: State, layers: int, hidden: int, noise_scale: float = 1e-2,
             seed: int = 0, radial: Radial | None = None) -> "PonitaGrowth":
        """The growth of a model of `config` with the trained `weights` to `layers` x `hidden` (and `radial`).

        `seed` draws the new blocks and the noise (whose size is measured on `weights`); the global RNG is untouched.
        """
        new = grown_config(config, layers, hidden, radial)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = fresh_layers(new, config.layers)
        widened = widen(weights, config, new.hidden // config.hidden)
        generator = torch.Generator().manual_seed(seed)
        k = new.hidden // config.hidden
        noise = {} if k == 1 or noise_scale == 0 else {
            name: centred_noise(tensor, k, noise_scale, generator) for name, tensor in widened.items()
            if NOISY.fullmatch(name)}
        return cls(config, new, fresh, noise)

    def apply(self, state: State) -> State:
        """The grown state dict of one set of weights (the model's or an EMA's) of the `old` model."""
        widened = widen(state, self.old, self.new.hidden // self.old.hidden)
        noisy = {name: tensor + self.noise[name].to(tensor) if name in self.noise else tensor
                 for name, tensor in widened.items()}
        deepened = deepen(noisy, replace(self.old, hidden=self.new.hidden), self.fresh, self.new.layers)
        return add_radial_columns(deepened, self.old, self.new)


def add_radial_columns(state: State, old: PonitaConfig, new: PonitaConfig) -> State:
    """The state with zero radial columns (RADIAL [basis_hidden, 3K]) where `new` adds radial features."""
    if new.radial_features == old.radial_features:
        return state
    width = RadialFeatures(new.radial_features, new.radial_basis, new.radial_cutoff).num_features  # 3K
    columns = torch.zeros(new.basis_hidden, width, dtype=state[KERNELS].dtype)  # [H, 3K]
    return {**state, RADIAL: columns}


def widen(state: State, config: PonitaConfig, k: int) -> State:
    """Every channel (and MLP hidden unit) copied k times in place, consumers split (see the module docstring)."""
    if k == 1:
        return dict(state)
    grown = {}
    for name, tensor in state.items():
        if name == KERNELS:
            rows = tensor.view(config.layers, config.hidden // config.channels_per_kernel, -1)  # [L, C/g, K]
            tensor = rows.repeat_interleave(k, dim=1).flatten(0, 1)  # [L·kC/g, K]
        if COPIED_ROWS.fullmatch(name):
            tensor = tensor.repeat_interleave(k, dim=0)  # [k·rows, ...]
        if SPLIT_COLUMNS.fullmatch(name):
            tensor = tensor.repeat_interleave(k, dim=1) / k  # [rows, k·columns]
        grown[name] = tensor
    return grown


def centred_noise(tensor: Tensor, k: int, scale: float, generator: torch.Generator) -> Tensor:
    """Gaussian noise of std scale·std(tensor), centred over each k consecutive rows (one unit's copies).
    Shapes: tensor [k·R, ...] -> [k·R, ...]."""
    noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float64) * scale * tensor.double().std()
    copies = noise.view(-1, k, *tensor.shape[1:])  # [R, k, ...]
    return (copies - copies.mean(dim=1, keepdim=True)).view(tensor.shape).to(tensor.dtype)


def fresh_layers(config: PonitaConfig, first: int) -> State:
    """Blocks `first`, ..., config.layers - 1 initialised as PONITA initialises them, and their spatial-kernel rows
    (KERNELS: [(L - first)·C/g, K]), named as in PONITA's state dict."""
    c = config
    if first == c.layers:
        return {}
    kernels = SpatialKernels(c.basis_dim, c.layers - first, c.hidden // c.channels_per_kernel)
    fresh = {KERNELS: kernels.linear.weight.detach()}
    for i in range(first, c.layers):
        block = ConvNeXtBlock(c.hidden, c.basis_dim, c.layer_scale, c.channels_per_kernel)
        fresh.update({f"blocks.{i}.{name}": tensor for name, tensor in block.state_dict().items()})
    return fresh


def deepen(state: State, config: PonitaConfig, fresh: State, layers: int) -> State:
    """`layers` - config.layers identity blocks appended (the `fresh_layers`, last MLP Linear zeroed), their
    spatial-kernel rows appended, and the averaged readouts kept (see the module docstring)."""
    old, dtype = config.layers, state[KERNELS].dtype
    if layers == old:
        return dict(state)
    grown = dict(state)
    grown[KERNELS] = torch.cat([state[KERNELS], fresh[KERNELS].to(dtype)])  # [L_new·C/g, K]
    for name, tensor in fresh.items():
        block = re.fullmatch(r"blocks\.\d+\.(.+)", name)
        if block:
            last = block[1].startswith("mlp.2.")  # the last Linear: zero, so the block is the identity
            grown[name] = torch.zeros_like(tensor, dtype=dtype) if last else tensor.to(dtype)
    if config.multiple_readouts:  # else one readout, after the last block: unchanged
        for i in range(layers):
            for part in ("weight", "bias"):
                name = f"readouts.{i}.{part}"  # the mean over L_new of L_new / L_old x each old one: the old mean
                grown[name] = state[name] * (layers / old) if i < old else torch.zeros_like(state[f"readouts.0.{part}"])
    return grown
