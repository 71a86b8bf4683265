"""An exactly invariant property regressor g(z_x, z_h, t, layout) -> normalised property [B, 1].

EDM's property classifier (ehoogeboom/e3_diffusion_for_molecules, qm9/property_prediction/models_property.py) is an
EGNN whose coordinate update is switched off: messages see only pair distances, so the prediction is invariant to
rotations, reflections, translations and atom permutations exactly (up to rounding). This one follows it:

    h^0 = Linear([z_h, t])                                    (t = 0 for an evaluator, which sees clean molecules)
    e_ij = [||x_i - x_j||^2, RBF_k(||x_i - x_j||)]            (RBF: Gaussians on a grid; EDM's has the square only)
    h_i <- h_i + node_mlp([h_i, sum_j m_ij * sigmoid(Linear(m_ij))]),  m_ij = edge_mlp([h_i, h_j, e_ij])
    y = graph_dec(sum_i node_dec(h_i))                        (sum pooling per molecule, EDM's)

A guide (noise_conditional) is trained on z_t of the generator's own schedule with t ~ U{0..T} and takes t = t_int / T
as the denoisers do; the buffers `target_mean` and `target_mad` hold the normalisation of its training targets, so
`denormalise` gives the property in its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from molgen.batch import MoleculeLayout
from molgen.configbase import DictConfig, check_bool, check_choice
from molgen.elements import NUM_FEATURES
from molgen.models.egnn import _all_pairs, _Pairs, _split_linear, _sum_over_senders, check_inputs
from molgen.models.registry import register_model
from molgen.precision import autocast
from molgen.property.names import HALVES, PROPERTY_NAMES


@dataclass(frozen=True)
class RegressorConfig(DictConfig):
    """A property regressor and what it learns.

    Attributes:
        property: which property (molgen.property.names.PROPERTY_NAMES).
        half: EDM's half of the training split it trains on: "second" (D_b, guides) or "first" (D_a, evaluators).
        noise_conditional: a guide on noisy z_t (True) or an evaluator on clean molecules (False).
        hidden, layers: width and depth.
        rbf: Gaussian distance features per pair (0: the squared distance alone, as EDM's).
        rbf_max: the largest Gaussian centre, in Å.
    """

    SECTION = "RegressorConfig"

    property: str = "gap"
    half: str = "second"
    noise_conditional: bool = True
    hidden: int = 96
    layers: int = 5
    rbf: int = 16
    rbf_max: float = 8.0

    def __post_init__(self) -> None:
        check_choice("RegressorConfig", "property", self.property, PROPERTY_NAMES)
        check_choice("RegressorConfig", "half", self.half, HALVES)
        check_bool("RegressorConfig", "noise_conditional", self.noise_conditional)
        for name, lowest in (("hidden", 1), ("layers", 1), ("rbf", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"RegressorConfig.{name} must be an integer >= {lowest}, got {value!r}")
        value = self.rbf_max
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"RegressorConfig.rbf_max must be a finite number > 0, got {value!r}")
        object.__setattr__(self, "rbf_max", float(value))


class InvariantLayer(nn.Module):
    """EDM's graph convolution without a coordinate update: gated edge messages, sum aggregation, residual."""

    def __init__(self, hidden: int, edge_features: int) -> None:
        super().__init__()
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * hidden + edge_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.att_mlp = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid())
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, e: Tensor, pairs: _Pairs) -> Tensor:
        """Shapes: h [M, H], e [E, F] -> [M, H] in h's dtype."""
        first, act, second, act2 = self.edge_mlp
        m = act2(second(act(_split_linear(first, h, e, pairs))))  # [E, H]
        aggregate = _sum_over_senders(m * self.att_mlp(m), pairs, h.shape[0], h.dtype)  # [M, H]
        return h + self.node_mlp(torch.cat([h, aggregate.to(m.dtype)], dim=1)).to(h.dtype)  # [M, H]


class PropertyRegressor(nn.Module):
    """`(z_x [M, 3], z_h [M, 6], t [B], layout) -> normalised property [B, 1]`, invariant (module docstring)."""

    def __init__(self, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else RegressorConfig()
        self.autocast_dtype: torch.dtype | None = None  # run-time precision (molgen.precision.set_precision)
        hidden, rbf = self.config.hidden, self.config.rbf
        self.embedding = nn.Linear(NUM_FEATURES + 1, hidden)
        self.layers = nn.ModuleList(InvariantLayer(hidden, 1 + rbf) for _ in range(self.config.layers))
        self.node_dec = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.graph_dec = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.register_buffer("rbf_centres", torch.linspace(0.0, self.config.rbf_max, rbf))  # [K]
        self.register_buffer("target_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("target_mad", torch.ones((), dtype=torch.float64))

    def set_normalisation(self, mean: float, mad: float) -> None:
        """Store the normalisation of the training targets (EDM's mean and MAD)."""
        self.target_mean.fill_(mean)
        self.target_mad.fill_(mad)

    def denormalise(self, prediction: Tensor) -> Tensor:
        """The property in its unit from normalised predictions (any shape), in float64."""
        return prediction.to(torch.float64) * self.target_mad + self.target_mean

    def edge_features(self, x: Tensor, pairs: _Pairs) -> Tensor:
        """[d_ij^2, RBF_k(d_ij)] of every pair. Shapes: x [M, 3] -> [E, 1 + K]."""
        difference = x.index_select(0, pairs.receiver) - x.index_select(0, pairs.sender)  # [E, 3]
        squared = (difference**2).sum(dim=1, keepdim=True)  # [E, 1]
        if self.config.rbf == 0:
            return squared
        spacing = self.config.rbf_max / max(self.config.rbf - 1, 1)
        distance = torch.sqrt(squared + 1e-8)  # [E, 1]
        centres = self.rbf_centres.to(x.dtype)  # [K]
        return torch.cat([squared, torch.exp(-(((distance - centres) / spacing) ** 2))], dim=1)  # [E, 1 + K]

    def forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> Tensor:
        """Predict the normalised property of each molecule.

        Args:
            z_x: positions (noisy for a guide) [M, 3]; z_h: scaled features [one-hot / 4, Z / 10] (noisy) [M, 6];
            t: diffusion time t_int / T of each molecule [B] (an evaluator ignores it); layout: atoms' molecules.

        Returns:
            [B, 1] in z_x's dtype.
        """
        check_inputs(z_x, z_h, t, layout)
        dtype = z_x.dtype
        pairs = _all_pairs(layout)
        t = t.to(dtype) if self.config.noise_conditional else torch.zeros_like(t, dtype=dtype)  # [B]
        with autocast(z_x.device, self.autocast_dtype):
            e = self.edge_features(z_x, pairs)  # [E, 1 + K]
            h = self.embedding(torch.cat([z_h.to(dtype), t[layout.batch].unsqueeze(1)], dim=1)).to(dtype)  # [M, H]
            for layer in self.layers:
                h = layer(h, e, pairs)  # [M, H]
            per_atom = self.node_dec(h).to(dtype)  # [M, H]
            pooled = per_atom.new_zeros(layout.num_molecules, per_atom.shape[1]).index_add_(0, layout.batch, per_atom)
            return self.graph_dec(pooled).to(dtype)  # [B, 1]


register_model("property_regressor", RegressorConfig, PropertyRegressor)
