"""The guide regressors of a sampling request: loaded from their files (`molgen.property.targets.guide_path`), with
the energy guidance and p(N | c) they give (`molgen.property.guidance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.schedule import NoiseSchedule
from molgen.errors import MolgenError
from molgen.property.guidance import EnergyGuidance, EnergyTerm, PropertyHistograms, conditional_node_distribution
from molgen.property.targets import DEFAULT_GUIDANCE, Target, guide_path


@dataclass(frozen=True)
class Guide:
    """A property's guide: regressor g(z_t, t) in normalised units, EDM's normalisation (c - mean) / MAD, and the
    property's histograms per atom count over D_b (None: p(N | c) cannot use it)."""

    name: str
    regressor: torch.nn.Module
    mean: float
    mad: float
    histograms: PropertyHistograms | None = None

    def normalise(self, values: Tensor) -> Tensor:
        """(c - mean) / MAD of values in the property's unit, same shape."""
        return (values - self.mean) / self.mad


def load_guide(name: str, folder=None, device: torch.device | str = "cpu") -> Guide:
    """The guide of property `name` from FOLDER/NAME_guide.pt, frozen, in eval mode, on `device`."""
    from molgen.property.checkpoint import load_regressor

    path = guide_path(name, folder)
    loaded = load_regressor(path)
    if loaded.property.name != name or not loaded.noise_conditional:
        what = "an evaluator (clean molecules)" if not loaded.noise_conditional else f"a guide of {loaded.property.name}"
        raise MolgenError(f"{path} holds {what}, not a noise-conditional guide of {name}")
    regressor = loaded.module.to(device).eval().requires_grad_(False)
    histograms = PropertyHistograms(*(loaded.histograms[key] for key in ("counts", "low", "high")))
    return Guide(name, regressor, loaded.normalisation.mean, loaded.normalisation.mad, histograms)


@dataclass(frozen=True)
class GuidedRequest:
    """Guides and targets of a sampling request: the targets c_k in the properties' units, the scale s and the
    bound kappa of the guidance term (None: unbounded)."""

    guides: tuple[Guide, ...]
    values: tuple[float, ...]
    scale: float
    bound: float | None = None

    @classmethod
    def load(cls, targets: Sequence[Target], scale: float | None, folder=None,
             device: torch.device | str = "cpu", bound: float | None = None) -> GuidedRequest:
        """The guides of `targets` ((name, value) pairs), scale s (None: DEFAULT_GUIDANCE), bound kappa."""
        guides = tuple(load_guide(name, folder, device) for name, _ in targets)
        return cls(guides, tuple(float(value) for _, value in targets), DEFAULT_GUIDANCE if scale is None else scale,
                   bound)

    def node_distribution(self, prior: NodeCountDistribution, above: int = 0) -> NodeCountDistribution:
        """p(N | c) ∝ p(N) prod_k p(c_k | N) over N > above; MolgenError when no atom count fits."""
        pairs = [(guide.histograms, value) for guide, value in zip(self.guides, self.values)
                 if guide.histograms is not None]
        try:
            return conditional_node_distribution(prior, pairs, above)
        except ValueError:
            wanted = ", ".join(f"{guide.name}={value:g}" for guide, value in zip(self.guides, self.values))
            raise MolgenError(f"no atom count of the training data has molecules with {wanted}"
                              + (f" and more than {above} atoms" if above else "")) from None

    def modifiers(self, schedule: NoiseSchedule, num_molecules: int) -> list[EnergyGuidance]:
        """[the energy guidance of a batch of `num_molecules` molecules], or [] when s = 0 (unguided)."""
        if self.scale == 0:
            return []
        return [guidance(self.guides, torch.tensor([self.values] * num_molecules, dtype=torch.float64), self.scale,
                         schedule, self.bound)]


def guidance(guides: Sequence[Guide], values: Tensor, scale: float, schedule: NoiseSchedule,
             bound: float | None = None) -> EnergyGuidance:
    """The energy guidance toward per-molecule targets values [B, K] (property units, one column per guide), its
    term bounded to RMS `bound` per molecule (None: unbounded)."""
    device = schedule.gamma_table.device
    terms = [EnergyTerm(guide.regressor, guide.normalise(values[:, k]).to(device, torch.float32))
             for k, guide in enumerate(guides)]
    return EnergyGuidance(terms, scale, schedule, bound=bound)


def guided_request(settings, device: torch.device | str = "cpu") -> GuidedRequest | None:
    """The guides of a `SampleSettings`' targets (None without targets), on `device`."""
    if not settings.targets:
        return None
    return GuidedRequest.load(settings.targets, settings.guidance, settings.regressors, device,
                              settings.guidance_bound)
