"""Energy guidance toward target properties (EEGSDE: Bao et al., ICLR 2023) and EDM's p(N | c).

The energy of a noisy state is E(z_t, t) = sum_k (g_k(z_t, t) - c_k)^2 / 2 in normalised units, g_k a noise-conditional
regressor of property k (exactly invariant) and c_k = (target - mean) / MAD its target. The guided prediction is

    eps~ = eps_hat + s * sigma_t * grad_z E(z_t, t),

which in EDM's ancestral step z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps~ + noise moves the
mean by -s * sigma^2_{t|s} / alpha_{t|s} * grad_z E: EEGSDE's `sample_p_zs_given_zt` (gracezhao1997/EEGSDE,
models_conditional/en_diffusion.py), `mu = mu - l * weight_t * grad` with weight_t = sigma2_t_given_s / alpha_t_given_s.
As there, the gradient is taken with respect to the whole state z = [z_x, z_h] (features included), its position part
projected to zero centroid per molecule, and EDM's final step p(x, h | z_0) is not guided. EEGSDE's energy is
(g - c)^2 without the 1/2, so its scale l is s / 2 here. The gradient flows through the regressors only (the
denoiser's prediction is a constant of it), computed in the regressors' dtype (float32 as shipped) without autocast.

An optional bound kappa (ours, not EEGSDE's) caps the guidance term u = s * sigma_t * grad_z E per molecule: where its
root mean square over the molecule's M_b x 9 entries exceeds kappa, u is scaled down to RMS kappa. eps_hat estimates
unit-variance noise, so kappa is in noise standard deviations; the scaling is rotation invariant and keeps the zero
centroid, so the guided eps stays equivariant. It stops the few steps where a large s meets a steep guide on nearly
pure noise from throwing the state far off (eval/property_guidance.md: alpha at s = 3 with 100 steps).

p(N | c) ∝ p(N) * prod_k p(c_k | N): EDM draws the property given N from per-N histograms over D_b
(`DistributionProperty`); here the same histograms weigh the atom counts given the targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from molgen.batch import MoleculeLayout
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.schedule import NoiseSchedule, sigma
from molgen.geometry.centroid import remove_centroid

Regressor = Callable[[Tensor, Tensor, Tensor, MoleculeLayout], Tensor]
"""g(z_x [M, 3], z_h [M, 6], t [B], layout) -> the normalised property of each molecule, [B, 1] or [B]."""


@dataclass(frozen=True)
class EnergyTerm:
    """One property's term (g(z_t, t) - c)^2 / 2: its regressor and the normalised target of each molecule, [B]."""

    regressor: Regressor
    target: Tensor


def property_energy(terms: Sequence[EnergyTerm], z: Tensor, t: Tensor, layout: MoleculeLayout) -> Tensor:
    """E(z_t, t) = sum_k (g_k(z_t, t) - c_k)^2 / 2 of each molecule, [B]. Shapes: z [M, 9], t [B]."""
    energy = z.new_zeros(layout.num_molecules)  # [B]
    for term in terms:
        prediction = term.regressor(z[:, :3], z[:, 3:], t, layout).reshape(layout.num_molecules)  # [B]
        energy = energy + 0.5 * (prediction - term.target.to(prediction)) ** 2  # [B]
    return energy


def energy_gradient(terms: Sequence[EnergyTerm], z: Tensor, t: Tensor, layout: MoleculeLayout,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """grad_z E(z_t, t), [M, 9], in `dtype`, its position part with zero centroid per molecule.

    Runs outside inference mode with gradients on and autocast off; z, t and the layout are copied first (tensors
    made under inference mode cannot enter autograd), so only the copy of z is differentiated.
    """
    device_type = z.device.type
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device_type, enabled=False):
        z_in = z.to(dtype).clone().requires_grad_(True)  # [M, 9]
        own = MoleculeLayout(batch=layout.batch.clone(), ptr=layout.ptr.clone())
        energy = property_energy(terms, z_in, t.to(dtype).clone(), own)  # [B]
        (gradient,) = torch.autograd.grad(energy.sum(), z_in)  # [M, 9]
    gradient = gradient.detach()
    position = remove_centroid(gradient[:, :3], own.batch, own.num_molecules)  # [M, 3]
    return torch.cat([position, gradient[:, 3:]], dim=1)  # [M, 9]


def bound_rms(term: Tensor, layout: MoleculeLayout, bound: float) -> Tensor:
    """term [M, D] scaled per molecule so that its root mean square over the molecule's atoms and channels is at
    most `bound`; molecules below it are unchanged."""
    squares = torch.zeros(layout.num_molecules, dtype=term.dtype, device=term.device)  # [B]
    squares = squares.index_add(0, layout.batch, term.pow(2).sum(dim=1))  # [B]
    entries = (layout.ptr[1:] - layout.ptr[:-1]).to(term.dtype) * term.shape[1]  # [B]
    rms = (squares / entries.clamp_min(1)).sqrt()  # [B]
    factor = (bound / rms.clamp_min(torch.finfo(term.dtype).tiny)).clamp(max=1.0)  # [B]
    return term * factor[layout.batch].unsqueeze(1)


class EnergyGuidance:
    """The ε-modifier eps~ = eps_hat + s * sigma_t * grad_z E(z_t, t) (module docstring); the identity at t = 0.

    Args:
        terms: one `EnergyTerm` per property, targets for the molecules of the batch it guides.
        scale: s >= 0.
        schedule: the generator's noise schedule (sigma_t read at the step round(t T), as the ancestral grid is).
        dtype: the dtype of the regressors' computation.
        bound: kappa > 0, the largest RMS of s * sigma_t * grad_z E per molecule (module docstring); None: unbounded,
            EEGSDE's form.
    """

    def __init__(self, terms: Sequence[EnergyTerm], scale: float, schedule: NoiseSchedule,
                 dtype: torch.dtype = torch.float32, bound: float | None = None) -> None:
        if not scale >= 0:
            raise ValueError(f"the guidance scale must be >= 0, got {scale}")
        if bound is not None and not bound > 0:
            raise ValueError(f"the guidance bound must be > 0, got {bound}")
        self.terms, self.scale, self.schedule, self.dtype = tuple(terms), float(scale), schedule, dtype
        self.bound = bound

    def __call__(self, eps: Tensor, z: Tensor, t: Tensor, layout: MoleculeLayout) -> Tensor:
        """eps~ [M, 9] from eps [M, 9] at the state z [M, 9] and times t [B]."""
        if bool((t == 0).all()):
            return eps  # EEGSDE guides p(z_s | z_t) only, not EDM's final step
        sigma_t = sigma(self.schedule.gamma(t.to(self.schedule.gamma_table.device))).to(eps.device)  # [B] float64
        gradient = energy_gradient(self.terms, z, t, layout, self.dtype)  # [M, 9]
        term = (self.scale * sigma_t[layout.batch]).unsqueeze(1).to(eps.dtype) * gradient.to(eps.dtype)  # [M, 9]
        if self.bound is not None:
            term = bound_rms(term, layout, self.bound)
        return eps + term


@dataclass(frozen=True)
class PropertyHistograms:
    """EDM's `DistributionProperty` of a property over D_b: per atom count N a histogram counts [N_max + 1, bins] over
    that N's own range [low_N, high_N] (float64 [N_max + 1] each, NaN where no molecule has N atoms)."""

    counts: Tensor
    low: Tensor
    high: Tensor

    def density(self, value: float) -> Tensor:
        """p(c = value | N) for N = 0..N_max, float64 [N_max + 1]: the count of value's bin / (molecules with N atoms
        * bin width); 0 outside [low_N, high_N] and for unseen N. Bin: int((v - low) / (high - low + 1e-12) * bins),
        the last bin closed (EDM's)."""
        counts, low, high = self.counts.to(torch.float64), self.low.to(torch.float64), self.high.to(torch.float64)
        bins = counts.shape[1]
        span = high - low + 1e-12  # [N + 1]
        inside = (value >= low) & (value <= high)  # [N + 1], False where NaN
        position = ((value - low) / span * bins).nan_to_num(0.0).clamp(0, bins - 1).long()  # [N + 1]
        in_bin = counts.gather(1, position.unsqueeze(1)).squeeze(1)  # [N + 1]
        density = in_bin / counts.sum(dim=1).clamp_min(1.0) / (span / bins).nan_to_num(1.0)  # [N + 1]
        return torch.where(inside, density, torch.zeros_like(density))


def conditional_node_distribution(prior: NodeCountDistribution, targets: Sequence[tuple[PropertyHistograms, float]],
                                  above: int = 0) -> NodeCountDistribution:
    """p(N | c) ∝ p(N) prod_k p(c_k | N) (restricted to N > above); ValueError when no atom count fits the targets."""
    weights = prior.probabilities.clone()  # [N_max + 1]
    for histograms, value in targets:
        density = histograms.density(value).to(weights.device)  # [N_h + 1]
        size = min(weights.numel(), density.numel())
        weights = torch.cat([weights[:size] * density[:size], weights.new_zeros(weights.numel() - size)])
    weights[: above + 1] = 0
    if not weights.sum() > 0:
        raise ValueError("no atom count of the training data has molecules with these target values")
    return NodeCountDistribution(weights)
