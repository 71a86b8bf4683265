"""PONITA on position-orientation space R^3 x S^2 (Bekkers et al., ICLR 2024) as an EDM denoiser.

Every atom carries features on a grid of O orientations. The invariants of each ordered atom pair and
orientation, (a, b) = (oᵀ(x_j - x_i), ‖x_j - x_i - a·o‖), together with the diffusion time t, are embedded
once per forward pass into a spatial kernel basis; oᵀo' into a spherical one. Layers are ConvNeXt blocks
around the separable group convolution (molgen.nn.conv). Scalar inputs (the noisy one-hot and charge, and t)
are lifted by copying them to every orientation; outputs are read out as scalars (mean over orientations:
eps_h) and a vector (3/O)·Σ_o f(o)·o (eps_x, centroid removed; the 3 makes a field f(o) = vᵀo read out as v).

The spatial sum runs over each molecule's fully connected graph with self-loops (as the PONITA authors do;
at j = i, a = b = 0, so the self-loop is a learned node-wise term). With a fixed grid the network is exactly
invariant/equivariant when the grid rotates with the input; for a rotation of the input alone the error
shrinks as O grows (tests measure it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from molgen.batch import MoleculeLayout
from molgen.configbase import DictConfig, as_number, check_choice, set_field
from molgen.elements import NUM_FEATURES
from molgen.geometry.centroid import remove_centroid
from molgen.geometry.invariants import orientation_invariants, pair_invariants
from molgen.geometry.orientations import repulsion_grid
from molgen.models.registry import register_model
from molgen.nn.basis import KernelBasis
from molgen.nn.conv import ConvNeXtBlock, SpatialKernels
from molgen.nn.dense import DenseLayout, GroupedLayout, SizeGroup, from_dense, grouped_layout, to_dense
from molgen.nn.radial import RADIAL_BASES, RadialFeatures
from molgen.precision import autocast


@dataclass(frozen=True)
class PonitaConfig(DictConfig):
    """Sizes and options of the PONITA denoiser.

    Attributes:
        orientations: O, points of the orientation grid on S^2.
        hidden: C, channels per atom and orientation.
        layers: ConvNeXt blocks.
        basis_dim: K, size of the kernel bases shared by all layers.
        channels_per_kernel: g, channels that share one spatial kernel (1: PONITA's depthwise convolution).
        basis_hidden: hidden width of the basis MLPs.
        degree: highest tensor power of the polynomial attribute features.
        layer_scale: initial layer scale of the ConvNeXt blocks (None: no layer scale).
        multiple_readouts: read out after every block and average (else after the last only).
        time_in_basis: also condition the spatial kernel basis on t.
        radial_features: K radial features each of the pair distance d and of a and b as more inputs of the spatial
            basis MLP's first layer (0: none; molgen.nn.radial).
        radial_basis: `bessel` (DimeNet, PaiNN) or `gaussian` (SchNet).
        radial_cutoff: c in Å: the Bessel features vanish at d = c; the Gaussians' centres span [0, c] ([−c, c]
            for a).

    Precision is not part of the config: it is chosen at run time (molgen.precision.set_precision).
    """

    SECTION = "PonitaConfig"

    orientations: int = 8
    hidden: int = 64
    layers: int = 5
    basis_dim: int = 32
    channels_per_kernel: int = 8
    basis_hidden: int = 32
    degree: int = 3
    layer_scale: float | None = None
    multiple_readouts: bool = True
    time_in_basis: bool = True
    radial_features: int = 0
    radial_basis: str = "bessel"
    radial_cutoff: float = 5.0

    def __post_init__(self) -> None:
        for name in ("orientations", "hidden", "layers", "basis_dim", "channels_per_kernel", "basis_hidden", "degree"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PonitaConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden % self.channels_per_kernel:
            raise ValueError(f"PonitaConfig.hidden ({self.hidden}) must be a multiple of channels_per_kernel "
                             f"({self.channels_per_kernel})")
        if self.layer_scale is not None and not self.layer_scale > 0:
            raise ValueError(f"PonitaConfig.layer_scale must be positive or None, got {self.layer_scale!r}")
        check_radial(self)


def check_radial(config: PonitaConfig) -> None:
    """ValueError (one line, naming the field) unless the radial settings are valid; stores the cutoff as a float."""
    count = config.radial_features
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"PonitaConfig.radial_features must be an integer >= 0 (0: none), got {count!r}")
    check_choice(config.SECTION, "radial_basis", config.radial_basis, RADIAL_BASES)
    cutoff = as_number(config.SECTION, "radial_cutoff", config.radial_cutoff)
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"PonitaConfig.radial_cutoff must be a distance > 0 in Å, got {config.radial_cutoff!r}")
    set_field(config, "radial_cutoff", cutoff)


PAPER_SCALE = PonitaConfig(orientations=12, hidden=256, layers=9, basis_dim=256, basis_hidden=256, channels_per_kernel=1)


class Ponita(nn.Module):
    """The R^3 x S^2 denoiser: `(z_x [M,3], z_h [M,6], t [B], layout) -> (eps_x [M,3], eps_h [M,6])`.

    `autocast_dtype` (None: the inputs' dtype; torch.bfloat16: bf16 autocast of the network, geometry in the
    inputs' dtype) is a run-time setting, not a weight: set it with molgen.precision.set_precision.
    """

    def __init__(self, config: PonitaConfig = PonitaConfig()) -> None:
        super().__init__()
        self.config = config
        self.autocast_dtype: torch.dtype | None = None
        c = config
        self.register_buffer("grid", repulsion_grid(c.orientations).to(torch.get_default_dtype()))  # [O, 3]
        spatial_attributes = 3 if c.time_in_basis else 2
        radial = RadialFeatures(c.radial_features, c.radial_basis, c.radial_cutoff) if c.radial_features else None
        self.spatial_basis = KernelBasis(spatial_attributes, c.basis_hidden, c.basis_dim, c.degree, radial)
        self.spherical_basis = KernelBasis(1, c.basis_hidden, c.basis_dim, c.degree)
        self.spatial_kernels = SpatialKernels(c.basis_dim, c.layers, c.hidden // c.channels_per_kernel)
        self.embed = nn.Linear(NUM_FEATURES + 1, c.hidden, bias=False)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c.hidden, c.basis_dim, c.layer_scale, c.channels_per_kernel) for _ in range(c.layers)
        )
        readouts = c.layers if c.multiple_readouts else 1
        self.readouts = nn.ModuleList(nn.Linear(c.hidden, NUM_FEATURES + 1) for _ in range(readouts))

    def prepare_layout(self, layout: MoleculeLayout) -> GroupedLayout:
        """`layout` with its size groups and padded blocks worked out, to pass to every call on the same molecules
        (the samplers do: the set-up is then made once per sampling run, not once per step)."""
        return grouped_layout(layout)

    def forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        """Predict the noise of positions and features.

        A batch of mixed sizes runs as a few blocks of similar size (molgen.nn.dense.size_groups), each padded
        to its own largest molecule; every molecule's output is what it would be alone. A `GroupedLayout`
        (`prepare_layout`) brings that split ready-made.
        Shapes: z_x [M, 3], z_h [M, 6], t [B] (in [0, 1]) -> eps_x [M, 3] (zero centroid), eps_h [M, 6].
        """
        grouped = grouped_layout(layout)
        with autocast(z_x.device, self.autocast_dtype):
            spherical_basis = self.spherical_basis(orientation_invariants(self.grid).to(z_x.dtype))  # [O, O, K]
        if grouped.inverse is None:
            return self._dense_forward(z_x, z_h, t, grouped.groups[0], spherical_basis)
        outputs = [self._dense_forward(z_x[g.atoms], z_h[g.atoms], t[g.molecules], g, spherical_basis)
                   for g in grouped.groups]
        eps_x = torch.cat([x for x, _ in outputs])[grouped.inverse]  # [M, 3]
        eps_h = torch.cat([h for _, h in outputs])[grouped.inverse]  # [M, 6]
        return eps_x, eps_h

    def _dense_forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, group: SizeGroup,
                       spherical_basis: Tensor) -> tuple[Tensor, Tensor]:
        """The network on one size group padded to its largest molecule; shapes as `forward`, spherical_basis
        [O, O, K]."""
        layout, dense = group.layout, group.dense
        grid = self.grid.to(z_x.dtype)  # [O, 3]
        attributes = pair_invariants(to_dense(z_x, dense), grid)  # [B, O, N, N, 2]
        h = torch.cat([z_h, t.to(z_h.dtype)[layout.batch].unsqueeze(-1)], dim=-1)  # [M, 7]
        with autocast(z_x.device, self.autocast_dtype):
            out = self._network(to_dense(h, dense), attributes, t.to(z_x.dtype), atom_mask(dense, h.dtype),
                                spherical_basis)
        out = out.to(z_x.dtype)  # [B, O, N, 7]
        eps_h = from_dense(out[..., :NUM_FEATURES].mean(dim=1), dense)  # [M, 6]
        vector = 3.0 * (out[..., NUM_FEATURES:] * grid.view(1, -1, 1, 3)).mean(dim=1)  # [B, N, 3]
        eps_x = remove_centroid(from_dense(vector, dense), layout.batch, layout.num_molecules)  # [M, 3]
        return eps_x, eps_h

    def _network(self, h: Tensor, attributes: Tensor, t: Tensor, mask: Tensor | None, spherical_basis: Tensor) -> Tensor:
        """Lift, run the blocks, read out. Shapes: h [B, N, 7], attributes [B, O, N, N, 2], t [B], mask [B, 1, N, 1]
        (`atom_mask`; None: no padding), spherical_basis [O, O, K] -> [B, O, N, 7] (6 scalar channels, then the
        vector field's)."""
        b, o, n = attributes.shape[:3]
        kernels = self.spatial_kernels(self._spatial_basis(attributes, t)).unflatten(-1, (n, n))  # [L, C/g, B*O, N, N]
        kernels = kernels.unbind(0)  # L x [C/g, B*O, N, N] (unbind: the backward stacks, no zero-filled copies)
        f = self.embed(h).unsqueeze(1).expand(-1, o, -1, -1)  # [B, O, N, C]
        outputs = []
        for i, block in enumerate(self.blocks):
            f = block(f if mask is None else f * mask, kernels[i], spherical_basis)  # [B, O, N, C]
            if self.config.multiple_readouts:
                outputs.append(self.readouts[i](f))  # [B, O, N, 7]
        if not self.config.multiple_readouts:
            outputs.append(self.readouts[0](f))  # [B, O, N, 7]
        return torch.stack(outputs).mean(dim=0)  # [B, O, N, 7]

    def _spatial_basis(self, attributes: Tensor, t: Tensor) -> Tensor:
        """The spatial kernel basis of every (orientation, pair), t folded in per molecule (KernelBasis.pair_basis).
        Shapes: attributes [B, O, N, N, 2], t [B] -> [B, O, N*N, K]."""
        b, o, n = attributes.shape[:3]
        molecule = t.view(b, 1) if self.config.time_in_basis else t.new_zeros(b, 0)  # [B, 1] or [B, 0]
        basis = self.spatial_basis.pair_basis(attributes.reshape(b, o * n * n, 2), molecule)  # [B, O*N*N, K]
        return basis.view(b, o, n * n, -1)  # [B, O, N*N, K]


def atom_mask(dense: DenseLayout, dtype: torch.dtype) -> Tensor | None:
    """The padded block's atom mask as a factor, [B, 1, N, 1] in `dtype`, or None when nothing is padded (decided
    here, outside the network, so that a compiled network has no data-dependent branch)."""
    if dense.mask.all():
        return None
    return dense.mask.view(dense.num_molecules, 1, dense.max_atoms, 1).to(dtype)  # [B, 1, N, 1]


register_model("ponita", PonitaConfig, Ponita)
