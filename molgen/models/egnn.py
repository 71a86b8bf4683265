"""EDM's denoiser: the E(n) equivariant graph network (EGNN) of Hoogeboom et al. (2022), on all atom pairs.

The architecture follows EDM's QM9 model exactly (Hoogeboom et al. 2022, and the EGNN of their code, github
ehoogeboom/e3_diffusion_for_molecules):

    h^0 = Linear(7 -> H)([z_h, t])                         z_h = [one-hot / 4, Z / 10], t = t_int / T
    x^0 = z_x
    for each of L blocks, on the fully connected graph of each molecule without self-loops (i receives from j):
        e_ij   = [||x_i - x_j||^2, ||x^0_i - x^0_j||^2]                       (current, input)
        m_ij   = SiLU(Linear(SiLU(Linear([h_i, h_j, e_ij]))))                  (edge MLP)
        h_i   <- h_i + Linear(SiLU(Linear([h_i, sum_j m_ij * sigmoid(Linear(m_ij))])))   (GCL, sum aggregation)
        x_i   <- x_i + sum_j (x_i - x_j) / (sqrt(||x_i - x_j||^2 + 1e-8) + 1) * tanh(phi([h_i, h_j, e_ij])) * 15
    eps_x = x^L - x^0 with its centroid removed;  eps_h = Linear(H -> 7)(h^L) without the time channel.

With H = 256 and L = 9 this has EDM's 5,339,920 parameters, laid out as EDM lays them out (one Linear(2H+2 -> H)
per edge MLP, inputs in the order [h_i, h_j, e_ij]).

Implementation: the graph is the list of ordered pairs (i, j), i != j, of atoms of the same molecule (no padding:
a batch of QM9 molecules has about half as many real pairs as a padded [B, N, N] block; on 2 CPU cores an
edge MLP over the pair list ran ~3x (fp32) and ~1.5x (bf16) faster than over padded blocks). The first layer of each
edge MLP is split, W [h_i, h_j, e_ij] = W_i h_i + W_j h_j + W_e e_ij, so that W_i h and W_j h are computed once per
atom and gathered per pair (about N times fewer FLOPs than applying W to the concatenation). bf16 autocast (the
run-time setting `autocast_dtype`, see molgen.precision.set_precision) runs the Linear layers in bf16; the
coordinates (differences, norms, the position update), the residual stream h and the sums over neighbours stay
in the input's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgen.batch import MoleculeLayout
from molgen.configbase import DictConfig
from molgen.elements import NUM_FEATURES
from molgen.geometry.centroid import remove_centroid
from molgen.models.registry import register_model
from molgen.nn.dense import dense_layout
from molgen.precision import autocast


@dataclass(frozen=True)
class EGNNConfig(DictConfig):
    """EDM's EGNN hyper-parameters (defaults: EDM's QM9 model).

    Attributes:
        hidden: width H of the node features and of every MLP.
        layers: number of equivariant blocks (one GCL and one coordinate update each).
        coords_range: factor of the tanh in the coordinate update (EDM: 15).
        norm_constant: added to the pair distance that normalises x_i - x_j (EDM: 1).
        normalization_factor: the neighbour sums are divided by it (EDM: 1, i.e. plain sums).
    """

    SECTION = "EGNNConfig"

    hidden: int = 256
    layers: int = 9
    coords_range: float = 15.0
    norm_constant: float = 1.0
    normalization_factor: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EGNNConfig.{name} must be an integer >= 1, got {value!r}")
        for name, lowest, strict in (("coords_range", 0.0, True), ("norm_constant", 0.0, False),
                                     ("normalization_factor", 0.0, True)):
            value = getattr(self, name)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                  and (value > lowest if strict else value >= lowest))
            if not ok:
                bound = "> 0" if strict else ">= 0"
                raise ValueError(f"EGNNConfig.{name} must be a finite number {bound}, got {value!r}")
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class _Pairs:
    """The fully connected graph without self-loops: ordered pairs (i receives from j), sorted by i.

    Attributes:
        receiver: atom i of each pair, int64 [E].
        sender: atom j of each pair, int64 [E].
    """

    receiver: Tensor
    sender: Tensor


def check_inputs(z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> None:
    """Refuse inputs that are not z_x [M, 3], z_h [M, F] and t [B] of `layout`'s B molecules."""
    if z_x.ndim != 2 or z_x.shape[1] != 3 or z_h.shape != (z_x.shape[0], NUM_FEATURES):
        raise ValueError(f"expected z_x [M, 3] and z_h [M, {NUM_FEATURES}], got {tuple(z_x.shape)} and "
                         f"{tuple(z_h.shape)}")
    if t.shape != (layout.num_molecules,):
        raise ValueError(f"expected t [B] with B = {layout.num_molecules}, got {tuple(t.shape)}")


def _all_pairs(layout: MoleculeLayout) -> _Pairs:
    """All ordered pairs of distinct atoms of the same molecule, E = sum_b N_b (N_b - 1)."""
    dense = dense_layout(layout)
    molecule, i, j = dense.pair_mask.nonzero(as_tuple=True)  # [E], [E], [E]
    start = layout.ptr[molecule]  # [E]
    return _Pairs(receiver=start + i, sender=start + j)


def _split_linear(layer: nn.Linear, h: Tensor, e: Tensor, pairs: _Pairs) -> Tensor:
    """layer([h_i, h_j, e_ij]) for every pair, computed as W_i h_i + W_j h_j + W_e e_ij + b.

    Shapes: h [M, H], e [E, 2] -> [E, out].
    """
    hidden = h.shape[1]
    weight = layer.weight  # [out, 2H + 2]
    node = F.linear(h, torch.cat([weight[:, :hidden], weight[:, hidden : 2 * hidden]], dim=0))  # [M, 2 out]
    w_i, w_j = node.chunk(2, dim=1)  # [M, out], [M, out]
    edge = F.linear(e, weight[:, 2 * hidden :], layer.bias)  # [E, out]
    return w_i.index_select(0, pairs.receiver) + w_j.index_select(0, pairs.sender) + edge  # [E, out]


def _sum_over_senders(values: Tensor, pairs: _Pairs, num_atoms: int, dtype: torch.dtype) -> Tensor:
    """sum_j values_ij for every receiver i, accumulated in `dtype`.

    Shapes: values [E, F] -> [M, F].
    """
    out = values.new_zeros(num_atoms, values.shape[1], dtype=dtype)  # [M, F]
    return out.index_add_(0, pairs.receiver, values.to(dtype))  # [M, F]


class GCL(nn.Module):
    """EDM's graph convolution layer: gated edge messages, sum aggregation, residual node MLP."""

    def __init__(self, hidden: int, normalization_factor: float) -> None:
        super().__init__()
        self.normalization_factor = normalization_factor
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * hidden + 2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.att_mlp = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid())
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, e: Tensor, pairs: _Pairs) -> Tensor:
        """Shapes: h [M, H] (the residual stream's dtype is kept), e [E, 2] -> [M, H]."""
        first, act, second, act2 = self.edge_mlp
        m = act2(second(act(_split_linear(first, h, e, pairs))))  # [E, H]
        message = m * self.att_mlp(m)  # [E, H]
        aggregate = _sum_over_senders(message, pairs, h.shape[0], h.dtype) / self.normalization_factor  # [M, H]
        update = self.node_mlp(torch.cat([h, aggregate], dim=1))  # [M, H]
        return h + update.to(h.dtype)  # [M, H]


class EquivariantUpdate(nn.Module):
    """EDM's coordinate update: x_i += sum_j (x_i - x_j) / (|x_i - x_j| + c) * tanh(phi([h_i, h_j, e_ij])) * range."""

    def __init__(self, hidden: int, coords_range: float, norm_constant: float, normalization_factor: float) -> None:
        super().__init__()
        self.coords_range = coords_range
        self.norm_constant = norm_constant
        self.normalization_factor = normalization_factor
        last = nn.Linear(hidden, 1, bias=False)
        nn.init.xavier_uniform_(last.weight, gain=0.001)
        self.coord_mlp = nn.Sequential(
            nn.Linear(2 * hidden + 2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), last
        )

    def forward(self, h: Tensor, x: Tensor, e: Tensor, difference: Tensor, pairs: _Pairs) -> Tensor:
        """Shapes: h [M, H], x [M, 3], e [E, 2], difference x_i - x_j [E, 3] -> new x [M, 3] (x's dtype)."""
        first, *rest = self.coord_mlp
        phi = _split_linear(first, h, e, pairs)  # [E, H]
        for layer in rest:
            phi = layer(phi)  # [E, H] ... [E, 1]
        norm = torch.sqrt(e[:, :1] + 1e-8)  # [E, 1]
        direction = difference / (norm + self.norm_constant)  # [E, 3]
        translation = direction * torch.tanh(phi).to(x.dtype) * self.coords_range  # [E, 3]
        return x + _sum_over_senders(translation, pairs, x.shape[0], x.dtype) / self.normalization_factor  # [M, 3]


class EquivariantBlock(nn.Module):
    """One GCL on h followed by one coordinate update with the updated h, sharing the block's edge features."""

    def __init__(self, config: EGNNConfig) -> None:
        super().__init__()
        self.gcl = GCL(config.hidden, config.normalization_factor)
        self.update = EquivariantUpdate(config.hidden, config.coords_range, config.norm_constant,
                                        config.normalization_factor)

    def forward(self, h: Tensor, x: Tensor, radial_input: Tensor, pairs: _Pairs) -> tuple[Tensor, Tensor]:
        """Shapes: h [M, H], x [M, 3], radial_input (squared input distances) [E, 1] -> h [M, H], x [M, 3]."""
        difference = x.index_select(0, pairs.receiver) - x.index_select(0, pairs.sender)  # [E, 3]
        radial = (difference**2).sum(dim=1, keepdim=True)  # [E, 1]
        e = torch.cat([radial, radial_input], dim=1)  # [E, 2]  (current, input)
        h = self.gcl(h, e, pairs)  # [M, H]
        x = self.update(h, x, e, difference, pairs)  # [M, 3]
        return h, x


class EGNN(nn.Module):
    """EDM's denoiser: `(z_x [M, 3], z_h [M, 6], t [B], layout) -> (eps_x [M, 3], eps_h [M, 6])`."""

    def __init__(self, config: EGNNConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else EGNNConfig()
        self.autocast_dtype: torch.dtype | None = None  # run-time precision (molgen.precision.set_precision)
        hidden = self.config.hidden
        self.embedding = nn.Linear(NUM_FEATURES + 1, hidden)
        self.blocks = nn.ModuleList(EquivariantBlock(self.config) for _ in range(self.config.layers))
        self.embedding_out = nn.Linear(hidden, NUM_FEATURES + 1)

    def forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        """Predict the noise of z_t = alpha_t [x, h] + sigma_t eps.

        Args:
            z_x: noisy positions (zero centroid per molecule), [M, 3].
            z_h: noisy scaled features [one-hot / 4, Z / 10], [M, 6].
            t: diffusion time t_int / T of each molecule, [B].
            layout: the molecule of each atom.

        Returns:
            eps_x [M, 3] with zero centroid per molecule, and eps_h [M, 6], in z_x's dtype.
        """
        check_inputs(z_x, z_h, t, layout)
        dtype = z_x.dtype
        pairs = _all_pairs(layout)
        with autocast(z_x.device, self.autocast_dtype):
            h_in = torch.cat([z_h.to(dtype), t.to(dtype)[layout.batch].unsqueeze(1)], dim=1)  # [M, 7]
            h = self.embedding(h_in).to(dtype)  # [M, H]
            x = z_x  # [M, 3]
            difference = z_x.index_select(0, pairs.receiver) - z_x.index_select(0, pairs.sender)  # [E, 3]
            radial_input = (difference**2).sum(dim=1, keepdim=True)  # [E, 1]
            for block in self.blocks:
                h, x = block(h, x, radial_input, pairs)  # [M, H], [M, 3]
            out = self.embedding_out(h)  # [M, 7]
        eps_x = remove_centroid(x - z_x, layout.batch, layout.num_molecules)  # [M, 3]
        eps_h = out[:, :NUM_FEATURES].to(dtype)  # [M, 6]
        return eps_x, eps_h


register_model("egnn", EGNNConfig, EGNN)
