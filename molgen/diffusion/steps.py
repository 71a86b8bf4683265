"""The pieces every sampler shares: the sampler state, what a step hook sees and may change, the start z_T ~ N(0, I),
the ε-model the samplers call (the network with its NaN check, then the ε-modifiers) and EDM's final step
p(x, h | z_0) (Hoogeboom et al. 2022, Alg. 2).

The state is kept in the VP scale z = [z_x, z_h]; positions are re-centred after every step, and NaN or inf in the
state or the network output raises `SamplingError` naming the step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.errors import SamplingError
from molgen.diffusion.process import Denoiser, call_denoiser, sample_noise, state_to_batch
from molgen.diffusion.schedule import NoiseSchedule, alpha, sigma, sigma_ve
from molgen.geometry.centroid import remove_centroid


@dataclass(frozen=True)
class SamplerState:
    """A VP state of B molecules: z_x [M, 3] (zero centroid per molecule), z_h [M, 6], and their layout."""

    z_x: Tensor
    z_h: Tensor
    layout: MoleculeLayout


@dataclass(frozen=True)
class StepInfo:
    """What a step hook sees after each step.

    Attributes:
        step: index of the step just taken, 0 .. num_steps - 1.
        num_steps: the number of steps of the grid (the final network call at t = 0 is not a step).
        t_from: the time in [0, 1] the step started from.
        t: the time in [0, 1] reached (t_int / T for the ancestral sampler).
        sigma_ve: the variance-exploding noise level sigma_t / alpha_t = exp(gamma_t / 2) reached.
        z_x, z_h: the VP state reached, [M, 3] and [M, 6].
        layout: the molecules' layout.
    """

    step: int
    num_steps: int
    t_from: float
    t: float
    sigma_ve: float
    z_x: Tensor
    z_h: Tensor
    layout: MoleculeLayout

    @property
    def state(self) -> SamplerState:
        """The state reached."""
        return SamplerState(self.z_x, self.z_h, self.layout)


StepHook = Callable[[StepInfo], SamplerState | None]
"""Called after every step; a returned state (same layout, VP scale) replaces the one reached, None keeps it."""


def chain_hooks(*hooks: StepHook | None) -> StepHook | None:
    """One hook calling `hooks` in order, each seeing the state the previous ones left (None entries skipped)."""
    present = [hook for hook in hooks if hook is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def chained(info: StepInfo) -> SamplerState | None:
        changed = None
        for hook in present:
            state = hook(info)
            if state is not None:
                changed, info = state, replace(info, z_x=state.z_x, z_h=state.z_h)
        return changed

    return chained


def call_hook(hook: StepHook | None, info: StepInfo) -> SamplerState | None:
    """The hook's replacement of the state reached (None: keep it)."""
    return hook(info) if hook is not None else None


def initial_state(
    layout: MoleculeLayout,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> SamplerState:
    """z_T ~ N(0, I) with the position part projected to zero centroid (EDM Alg. 2)."""
    z_x, z_h = sample_noise(layout, dtype, device, generator)  # [M, 3], [M, 6]
    return SamplerState(z_x=z_x, z_h=z_h, layout=layout)


EpsModifier = Callable[[Tensor, Tensor, Tensor, MoleculeLayout], Tensor]
"""modifier(eps [M, 9], z [M, 9], t [B], layout) -> eps [M, 9]: changes the prediction eps_hat = [eps_x, eps_h] at the
state z = [z_x, z_h] and time t before a sampler's step (property guidance plugs in here)."""


@dataclass(frozen=True)
class EpsModel:
    """The denoiser wrapped once, in the form the samplers need: eps_hat at one time t for every molecule."""

    denoiser: Denoiser
    schedule: NoiseSchedule
    prepared: dict = field(default_factory=dict, repr=False, compare=False)

    def denoiser_layout(self, layout: MoleculeLayout) -> MoleculeLayout:
        """`layout` as the denoiser's `prepare_layout` sets it up (e.g. PONITA's size groups), made once for the
        layout of a run and reused at every step; `layout` itself for a denoiser without one."""
        prepare = getattr(self.denoiser, "prepare_layout", None)
        if prepare is None:
            return layout
        kept = self.prepared.get(id(layout))
        if kept is None or kept[0] is not layout:
            self.prepared.clear()
            kept = self.prepared[id(layout)] = (layout, prepare(layout))
        return kept[1]

    def eps(
        self, z_x: Tensor, z_h: Tensor, t: float, layout: MoleculeLayout, where: str,
        modifiers: Sequence[EpsModifier] = (),
    ) -> tuple[Tensor, Tensor]:
        """eps_hat (eps_x [M, 3], eps_h [M, 6]) from the denoiser at time t, then each modifier in order (their
        position part projected to zero centroid); SamplingError if either holds NaN or inf."""
        t_batch = torch.full((layout.num_molecules,), t, dtype=z_x.dtype, device=z_x.device)  # [B]
        prepared = self.denoiser_layout(layout)
        eps_hat_x, eps_hat_h = call_denoiser(self.denoiser, z_x, z_h, t_batch, prepared)  # [M, 3], [M, 6]
        if not (torch.isfinite(eps_hat_x).all() and torch.isfinite(eps_hat_h).all()):
            raise SamplingError(f"the network output holds NaN or inf at {where}")
        if not modifiers:
            return eps_hat_x, eps_hat_h
        z, eps = torch.cat([z_x, z_h], dim=1), torch.cat([eps_hat_x, eps_hat_h], dim=1)  # [M, 9], [M, 9]
        for modifier in modifiers:
            eps = modifier(eps, z, t_batch, layout)  # [M, 9]
        if eps.shape != z.shape:
            raise SamplingError(f"the ε-modifiers returned shape {tuple(eps.shape)}, not {tuple(z.shape)}, at {where}")
        if not torch.isfinite(eps).all():
            raise SamplingError(f"the ε-modifiers returned NaN or inf at {where}")
        return remove_centroid(eps[:, :3], layout.batch, layout.num_molecules), eps[:, 3:]  # [M, 3], [M, 6]


def final_step(
    model: EpsModel,
    state: SamplerState,
    generator: torch.Generator | None = None,
    t: float = 0.0,
    modifiers: Sequence[EpsModifier] = (),
) -> MoleculeBatch:
    """EDM's p(x, h | z_0): network at t = 0, x = (z_0 - sigma_0 eps_hat) / alpha_0 + exp(gamma_0 / 2) eps.

    eps has zero-centroid positions; atom type = argmax of the one-hot part of z_0 and charge = round(10 * charge
    part of z_0), read from z_0 directly as EDM does (sample_p_xh_given_z0). A state at a later time t (a grid
    ending above the schedule's smallest sigma) uses gamma at t (interpolated) in the same formula.
    """
    schedule = model.schedule
    gamma = schedule.gamma_continuous(torch.tensor(t, dtype=torch.float64, device=schedule.gamma_table.device)).cpu()
    alpha_t, sigma_t = float(alpha(gamma)), float(sigma(gamma))
    z_x, z_h, layout = state.z_x, state.z_h, state.layout
    where = f"the final step (t = {t:.4g})"
    eps_hat_x, _ = model.eps(z_x, z_h, t, layout, where, modifiers)  # [M, 3]
    eps_x, _ = sample_noise(layout, z_x.dtype, z_x.device, generator)  # [M, 3]
    x = (z_x - sigma_t * eps_hat_x) / alpha_t + float(sigma_ve(gamma)) * eps_x  # [M, 3]
    x = recentre_and_check(x, z_h, layout, where)
    return state_to_batch(x, z_h, layout)


def recentre_and_check(z_x: Tensor, z_h: Tensor, layout: MoleculeLayout, where: str) -> Tensor:
    """Re-centre the positions per molecule; SamplingError if the state holds NaN or inf. Returns z_x [M, 3]."""
    if not (torch.isfinite(z_x).all() and torch.isfinite(z_h).all()):
        raise SamplingError(f"the sampler state holds NaN or inf after {where}")
    return remove_centroid(z_x, layout.batch, layout.num_molecules)  # [M, 3]
