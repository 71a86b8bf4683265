"""Heun's method on the probability-flow ODE in the variance-exploding view (Karras et al. 2022, Alg. 2), on a
Karras grid of sigma_ve = sigma_t / alpha_t = exp(gamma_t / 2), deterministic or with churn, ending with EDM's final
step. The network always sees the VP state z = x_ve / sqrt(1 + sigma_ve^2) at the time t whose interpolated gamma is
2 log sigma_ve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.process import sample_noise
from molgen.diffusion.schedule import NoiseSchedule, sigma_ve, to_ve, to_vp
from molgen.diffusion.steps import (
    EpsModel,
    EpsModifier,
    SamplerState,
    StepHook,
    StepInfo,
    call_hook,
    final_step,
    recentre_and_check,
)


DEFAULT_RHO = 7.0


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = DEFAULT_RHO) -> Tensor:
    """Karras et al. (2022) Eq. 5: sigma_i = (max^(1/rho) + i / steps (min^(1/rho) - max^(1/rho)))^rho.

    Returns float64 [steps + 1], decreasing from sigma_max to sigma_min (both included; no trailing zero).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64)  # [steps + 1]
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (high + ramp * (low - high)) ** rho  # [steps + 1]


def karras_grid(schedule: NoiseSchedule, steps: int) -> Tensor:
    """The Karras grid (rho = 7) over the schedule's whole sigma_ve range, from t = 1 to t = 0, float64 [steps + 1]."""
    table_sigmas = sigma_ve(schedule.gamma_table[[0, -1]].cpu())  # [2]
    return karras_sigmas(float(table_sigmas[0]), float(table_sigmas[1]), steps)  # [steps + 1]


def snap_to_table(schedule: NoiseSchedule, sigmas: Tensor) -> Tensor:
    """Move each sigma_ve to the nearest (in t) grid point of the schedule, dropping repeats; float64 [<= K]."""
    t_int = schedule.t_int_from_t(schedule.t_from_gamma(2 * torch.log(sigmas.to(schedule.gamma_table.device))))  # [K]
    snapped = sigma_ve(schedule.gamma_at(torch.unique_consecutive(t_int)))  # [<= K]
    if snapped.numel() < 2:
        raise ValueError("the sigma grid collapses to a single step of the schedule; use more steps or a wider range")
    return snapped.cpu()


def sample_heun(
    model: EpsModel,
    start: SamplerState,
    grid: Tensor,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    modifiers: Sequence[EpsModifier] = (),
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> MoleculeBatch:
    """Heun's method on the probability-flow ODE in the VE view (Karras et al. 2022, Alg. 2), then EDM's final step.

    The grid holds the noise levels sigma_ve, float [K + 1], decreasing, all > 0 (`karras_grid`). VE state
    x_ve = z / alpha with sigma_ve = exp(gamma / 2); the network sees z = x_ve / sqrt(1 + sigma_ve^2) at the time t
    whose interpolated gamma is 2 log sigma_ve; D = x_ve - sigma_ve * eps_hat, so dx_ve / dsigma = eps_hat (after the
    ε-modifiers). Churn (Karras' S_churn): before step i with s_tmin <= sigma_i <= s_tmax, raise sigma_i to
    sigma_hat = sigma_i (1 + min(churn / K, sqrt(2) - 1)) (capped at the schedule's largest sigma) by adding
    sqrt(sigma_hat^2 - sigma_i^2) * s_noise * eps, positions projected to zero centroid.
    Network evaluations: 2 per step, plus one at t = 0. `start` holds the VP state z at grid[0] (z_T ~ N(0, I) for
    the default grid); `callback` sees (and may replace) the VP state z = x_ve / sqrt(1 + sigma_ve^2) after each step.
    """
    schedule, sigmas = model.schedule, grid.to(torch.float64).cpu()
    _check_sigmas(sigmas, schedule)
    sigma_ve_max = float(sigma_ve(schedule.gamma_table[-1]))
    num_steps = sigmas.numel() - 1
    x_ve, h_ve = to_ve(start.z_x, float(sigmas[0])), to_ve(start.z_h, float(sigmas[0]))  # [M, 3], [M, 6]
    for i in range(num_steps):
        sigma_i, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        where = f"step {i} of {num_steps} (sigma_ve = {sigma_i:.4g})"
        churn_factor = min(churn / num_steps, math.sqrt(2) - 1) if s_tmin <= sigma_i <= s_tmax else 0.0
        sigma_hat = min(sigma_i * (1 + churn_factor), max(sigma_ve_max, sigma_i))
        x_ve, h_ve = heun_step(model, (x_ve, h_ve), start.layout, (sigma_i, sigma_hat, sigma_next), generator,
                               s_noise, where, modifiers)
        info = StepInfo(i, num_steps, schedule.t_from_sigma_ve(sigma_i), schedule.t_from_sigma_ve(sigma_next),
                        sigma_next, to_vp(x_ve, sigma_next), to_vp(h_ve, sigma_next), start.layout)
        changed = call_hook(callback, info)
        if changed is not None:
            x_ve, h_ve = to_ve(changed.z_x, sigma_next), to_ve(changed.z_h, sigma_next)  # [M, 3], [M, 6]
    sigma_end = float(sigmas[-1])
    z_end = SamplerState(to_vp(x_ve, sigma_end), to_vp(h_ve, sigma_end), start.layout)
    return final_step(model, z_end, generator, schedule.t_from_sigma_ve(sigma_end), modifiers)


def heun_step(
    model: EpsModel,
    ve_state: tuple[Tensor, Tensor],
    layout: MoleculeLayout,
    sigmas: tuple[float, float, float],
    generator: torch.Generator | None = None,
    s_noise: float = 1.0,
    where: str = "a step",
    modifiers: Sequence[EpsModifier] = (),
) -> tuple[Tensor, Tensor]:
    """One step of Karras et al.'s Alg. 2 on the VE state (x_ve [M, 3], h_ve [M, 6]) at sigmas = (sigma_i,
    sigma_hat, sigma_next): churned up to sigma_hat >= sigma_i with fresh noise, then Heun to sigma_next.
    -> the VE state at sigma_next, positions re-centred."""
    (x_ve, h_ve), (sigma_i, sigma_hat, sigma_next) = ve_state, sigmas
    if sigma_hat > sigma_i:
        eps_x, eps_h = sample_noise(layout, x_ve.dtype, x_ve.device, generator)  # [M, 3], [M, 6]
        added = math.sqrt(sigma_hat**2 - sigma_i**2) * s_noise
        x_ve, h_ve = x_ve + added * eps_x, h_ve + added * eps_h  # [M, 3], [M, 6]
    d_x, d_h = _ve_derivative(model, x_ve, h_ve, sigma_hat, layout, where, modifiers)  # [M, 3], [M, 6]
    step = sigma_next - sigma_hat
    x_euler, h_euler = x_ve + step * d_x, h_ve + step * d_h  # [M, 3], [M, 6]
    d2_x, d2_h = _ve_derivative(model, x_euler, h_euler, sigma_next, layout, where, modifiers)  # [M, 3], [M, 6]
    x_ve = x_ve + step * 0.5 * (d_x + d2_x)  # [M, 3]
    h_ve = h_ve + step * 0.5 * (d_h + d2_h)  # [M, 6]
    return recentre_and_check(x_ve, h_ve, layout, where), h_ve


def _ve_derivative(
    model: EpsModel, x_ve: Tensor, h_ve: Tensor, level: float, layout: MoleculeLayout, where: str,
    modifiers: Sequence[EpsModifier],
) -> tuple[Tensor, Tensor]:
    """dx_ve / dsigma_ve = (x_ve - D(x_ve; sigma_ve)) / sigma_ve = eps_hat at sigma_ve = level, the network fed the
    VP state."""
    t = model.schedule.t_from_sigma_ve(level)
    return model.eps(to_vp(x_ve, level), to_vp(h_ve, level), t, layout, where, modifiers)


def _check_sigmas(sigmas: Tensor, schedule: NoiseSchedule) -> None:
    """ValueError unless sigmas [K + 1] is strictly decreasing within the schedule's sigma_ve range."""
    low, high = (float(sigma_ve(g)) for g in schedule.gamma_table[[0, -1]])
    if sigmas.ndim != 1 or sigmas.numel() < 2 or not (sigmas[1:] < sigmas[:-1]).all():
        raise ValueError("sigmas must be a strictly decreasing grid of at least 2 noise levels")
    if float(sigmas[-1]) < low * (1 - 1e-9) or float(sigmas[0]) > high * (1 + 1e-9):
        raise ValueError(f"sigmas must lie in the schedule's sigma_ve range [{low:.4g}, {high:.4g}]")
