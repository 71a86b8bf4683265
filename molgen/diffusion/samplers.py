"""Samplers for an EDM model, k-diffusion style: free functions (denoiser, schedule, start, grid, generator, callback).

- `sample_ancestral`: EDM's ancestral sampler p(z_s | z_t) (Hoogeboom et al. 2022, Alg. 2) on a decreasing grid of
  integer steps: all T steps (EDM), or a strided subset (`ancestral_grid`); the t|s quantities between
  non-adjacent steps follow the same formulas.
- `sample_heun`: Heun's method on the probability-flow ODE in the variance-exploding view (Karras et al. 2022,
  Alg. 2), on a Karras grid of sigma_ve = exp(gamma / 2), deterministic or with churn.
Both end with EDM's final step at t = 0 and return a `MoleculeBatch`; `sample` wires node counts, grids and start.
The state is kept in the VP scale z = [z_x, z_h]; positions are re-centred after every step, and NaN or inf in the
state or the network output raises `SamplingError` naming the step. After every step a hook (`StepHook`) sees the
state reached and may return a changed one (a progress bar returns nothing; inpainting puts the fixed atoms back).
"sigma" is the VP noise level sigma_t throughout; the VE level sigma_t / alpha_t = exp(gamma_t / 2) is "sigma_ve".
The sampler names and their default step counts (`SAMPLERS`, `DEFAULT_SAMPLER`, `DEFAULT_STEPS`) live here only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.errors import SamplingError
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.process import Denoiser, call_denoiser, sample_noise, state_to_batch
from molgen.diffusion.schedule import NoiseSchedule, alpha_t_given_s, sigma, sigma2_t_given_s, sigma_ve
from molgen.geometry.centroid import remove_centroid

SamplerName = Literal["ancestral", "heun"]
SAMPLERS: tuple[SamplerName, ...] = ("ancestral", "heun")
# The default: the best quality per second measured on the shipped checkpoint (eval/qm9_checkpoint_eval.md):
# EDM's ancestral sampler on 100 strided steps beat Heun with 10, 20 and 40 steps in stability.
DEFAULT_SAMPLER: SamplerName = "ancestral"
DEFAULT_STEPS: dict[str, int] = {"ancestral": 100, "heun": 20}  # EDM's protocol: ancestral with all T = 1000 steps
TimeMapping = Literal["interpolate", "nearest"]
DEFAULT_RHO = 7.0


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


def initial_state(
    layout: MoleculeLayout,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> SamplerState:
    """z_T ~ N(0, I) with the position part projected to zero centroid (EDM Alg. 2)."""
    z_x, z_h = sample_noise(layout, dtype, device, generator)  # [M, 3], [M, 6]
    return SamplerState(z_x=z_x, z_h=z_h, layout=layout)


def ancestral_grid(timesteps: int, steps: int) -> Tensor:
    """A decreasing grid of `steps + 1` distinct integer steps from T to 0, evenly strided, int64 [steps + 1]."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must lie in [1, T={timesteps}], got {steps}")
    return torch.linspace(timesteps, 0, steps + 1, dtype=torch.float64).round().long()  # [steps + 1]


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


def snap_to_table(schedule: NoiseSchedule, sigmas: Tensor) -> Tensor:
    """Move each sigma_ve to the nearest (in t) grid point of the schedule, dropping repeats; float64 [<= K]."""
    t_int = schedule.t_int_from_t(schedule.t_from_gamma(2 * torch.log(sigmas.to(schedule.gamma_table.device))))  # [K]
    snapped = sigma_ve(schedule.gamma_at(torch.unique_consecutive(t_int)))  # [<= K]
    if snapped.numel() < 2:
        raise ValueError("the sigma grid collapses to a single step of the schedule; use more steps or a wider range")
    return snapped.cpu()


def sample_ancestral(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    start: SamplerState,
    grid: Tensor,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
) -> MoleculeBatch:
    """EDM's ancestral sampler (Alg. 2) from z at grid[0] down the integer grid to 0, then EDM's final step.

    For consecutive grid points t > s: z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps_hat
    + sigma_{t|s} sigma_s / sigma_t * eps, eps with zero-centroid positions. `callback` may replace each z_s.
    Shapes: grid int [K + 1], decreasing, ending at 0.
    """
    grid = grid.long().cpu()
    _check_ancestral_grid(grid, schedule.timesteps)
    gamma = schedule.gamma_at(grid.to(schedule.gamma_table.device)).cpu()  # [K + 1] float64
    state = start
    num_steps = grid.numel() - 1
    for i in range(num_steps):
        t, s = float(grid[i]) / schedule.timesteps, float(grid[i + 1]) / schedule.timesteps
        where = f"step {i} of {num_steps} (t = {t:.4g})"
        z_x, z_h = ancestral_step(denoiser, state, t, gamma[i], gamma[i + 1], generator, where)
        info = StepInfo(i, num_steps, t, s, float(sigma_ve(gamma[i + 1])), z_x, z_h, state.layout)
        state = _call_hook(callback, info) or info.state
    return final_step(denoiser, schedule, state, generator)


def _call_hook(hook: StepHook | None, info: StepInfo) -> SamplerState | None:
    """The hook's replacement of the state reached (None: keep it)."""
    return hook(info) if hook is not None else None


def ancestral_step(
    denoiser: Denoiser,
    state: SamplerState,
    t: float,
    gamma_t: Tensor,
    gamma_s: Tensor,
    generator: torch.Generator | None = None,
    where: str = "a step",
) -> tuple[Tensor, Tensor]:
    """One draw from EDM's p(z_s | z_t) (Alg. 2), s < t, positions re-centred; -> z_s as (z_x [M, 3], z_h [M, 6]).

    z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps_hat + sigma_{t|s} sigma_s / sigma_t * eps.
    """
    alpha_ts = float(alpha_t_given_s(gamma_t, gamma_s))
    sigma2_ts = float(sigma2_t_given_s(gamma_t, gamma_s))
    sigma_t, sigma_s = float(sigma(gamma_t)), float(sigma(gamma_s))
    z_x, z_h, layout = state.z_x, state.z_h, state.layout
    eps_hat_x, eps_hat_h = _network(denoiser, z_x, z_h, t, layout, where)  # [M, 3], [M, 6]
    eps_x, eps_h = sample_noise(layout, z_x.dtype, z_x.device, generator)  # [M, 3], [M, 6]
    coefficient = sigma2_ts / (alpha_ts * sigma_t)
    noise_scale = math.sqrt(sigma2_ts) * sigma_s / sigma_t
    z_x = z_x / alpha_ts - coefficient * eps_hat_x + noise_scale * eps_x  # [M, 3]
    z_h = z_h / alpha_ts - coefficient * eps_hat_h + noise_scale * eps_h  # [M, 6]
    return _recentre_and_check(z_x, z_h, layout, where), z_h


def sample_heun(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    start: SamplerState,
    sigmas: Tensor,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> MoleculeBatch:
    """Heun's method on the probability-flow ODE in the VE view (Karras et al. 2022, Alg. 2), then EDM's final step.

    VE state x_ve = z / alpha with sigma_ve = exp(gamma / 2); the network sees z = x_ve / sqrt(1 + sigma_ve^2) at the
    time t whose interpolated gamma is 2 log sigma_ve; D = x_ve - sigma_ve * eps_hat, so dx_ve / dsigma = eps_hat.
    Churn (Karras' S_churn): before step i with s_tmin <= sigma_i <= s_tmax, raise sigma_i to
    sigma_hat = sigma_i (1 + min(churn / K, sqrt(2) - 1)) (capped at the schedule's largest sigma) by adding
    sqrt(sigma_hat^2 - sigma_i^2) * s_noise * eps, positions projected to zero centroid.
    Network evaluations: 2 per step, plus one at t = 0. Shapes: sigmas float [K + 1], decreasing, all > 0.
    `start` holds the VP state z at sigmas[0] (z_T ~ N(0, I) for the default sigma_max); `callback` sees (and may
    replace) the VP state z = x_ve / sqrt(1 + sigma_ve^2) after each step.
    """
    sigmas = sigmas.to(torch.float64).cpu()
    _check_sigmas(sigmas, schedule)
    sigma_ve_max = float(sigma_ve(schedule.gamma_table[-1]))
    num_steps = sigmas.numel() - 1
    x_ve, h_ve = _to_ve(start.z_x, start.z_h, float(sigmas[0]))  # [M, 3], [M, 6]
    for i in range(num_steps):
        sigma_i, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        where = f"step {i} of {num_steps} (sigma_ve = {sigma_i:.4g})"
        churn_factor = min(churn / num_steps, math.sqrt(2) - 1) if s_tmin <= sigma_i <= s_tmax else 0.0
        sigma_hat = min(sigma_i * (1 + churn_factor), max(sigma_ve_max, sigma_i))
        x_ve, h_ve = heun_step(denoiser, schedule, (x_ve, h_ve), start.layout, (sigma_i, sigma_hat, sigma_next),
                               generator, s_noise, where)
        info = StepInfo(i, num_steps, _t_of_sigma(schedule, sigma_i), _t_of_sigma(schedule, sigma_next), sigma_next,
                        *_to_vp(x_ve, h_ve, sigma_next), start.layout)
        changed = _call_hook(callback, info)
        if changed is not None:
            x_ve, h_ve = _to_ve(changed.z_x, changed.z_h, sigma_next)  # [M, 3], [M, 6]
    z_end = SamplerState(*_to_vp(x_ve, h_ve, float(sigmas[-1])), start.layout)
    return final_step(denoiser, schedule, z_end, generator, _t_of_sigma(schedule, float(sigmas[-1])))


def heun_step(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    ve_state: tuple[Tensor, Tensor],
    layout: MoleculeLayout,
    sigmas: tuple[float, float, float],
    generator: torch.Generator | None = None,
    s_noise: float = 1.0,
    where: str = "a step",
) -> tuple[Tensor, Tensor]:
    """One step of Karras et al.'s Alg. 2 on the VE state (x_ve [M, 3], h_ve [M, 6]) at sigmas = (sigma_i,
    sigma_hat, sigma_next): churned up to sigma_hat >= sigma_i with fresh noise, then Heun to sigma_next.
    -> the VE state at sigma_next, positions re-centred."""
    (x_ve, h_ve), (sigma_i, sigma_hat, sigma_next) = ve_state, sigmas
    if sigma_hat > sigma_i:
        eps_x, eps_h = sample_noise(layout, x_ve.dtype, x_ve.device, generator)  # [M, 3], [M, 6]
        added = math.sqrt(sigma_hat**2 - sigma_i**2) * s_noise
        x_ve, h_ve = x_ve + added * eps_x, h_ve + added * eps_h  # [M, 3], [M, 6]
    d_x, d_h = _ve_derivative(denoiser, schedule, x_ve, h_ve, sigma_hat, layout, where)  # [M, 3], [M, 6]
    step = sigma_next - sigma_hat
    x_euler, h_euler = x_ve + step * d_x, h_ve + step * d_h  # [M, 3], [M, 6]
    d2_x, d2_h = _ve_derivative(denoiser, schedule, x_euler, h_euler, sigma_next, layout, where)  # [M, 3], [M, 6]
    x_ve = x_ve + step * 0.5 * (d_x + d2_x)  # [M, 3]
    h_ve = h_ve + step * 0.5 * (d_h + d2_h)  # [M, 6]
    return _recentre_and_check(x_ve, h_ve, layout, where), h_ve


def _to_ve(z_x: Tensor, z_h: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """The VE state x_ve = z / alpha, alpha = 1 / sqrt(1 + sigma_ve^2) at sigma_ve = level: ([M, 3], [M, 6])."""
    scale = math.sqrt(1 + level**2)
    return z_x * scale, z_h * scale


def _to_vp(x_ve: Tensor, h_ve: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """The VP state z = alpha x_ve, alpha = 1 / sqrt(1 + sigma_ve^2) at sigma_ve = level: ([M, 3], [M, 6])."""
    scale = 1 / math.sqrt(1 + level**2)
    return x_ve * scale, h_ve * scale


def final_step(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    state: SamplerState,
    generator: torch.Generator | None = None,
    t: float = 0.0,
) -> MoleculeBatch:
    """EDM's p(x, h | z_0): network at t = 0, x = (z_0 - sigma_0 eps_hat) / alpha_0 + exp(gamma_0 / 2) eps.

    eps has zero-centroid positions; atom type = argmax of the one-hot part of z_0 and charge = round(10 * charge
    part of z_0), read from z_0 directly as EDM does (sample_p_xh_given_z0). A state at a later time t (a Heun grid
    ending above the schedule's smallest sigma) uses gamma at t (interpolated) in the same formula.
    """
    gamma = schedule.gamma_continuous(torch.tensor(t, dtype=torch.float64, device=schedule.gamma_table.device)).cpu()
    alpha_t, sigma_t = float(torch.sigmoid(-gamma).sqrt()), float(sigma(gamma))
    z_x, z_h, layout = state.z_x, state.z_h, state.layout
    where = f"the final step (t = {t:.4g})"
    eps_hat_x, _ = _network(denoiser, z_x, z_h, t, layout, where)  # [M, 3]
    eps_x, _ = sample_noise(layout, z_x.dtype, z_x.device, generator)  # [M, 3]
    x = (z_x - sigma_t * eps_hat_x) / alpha_t + float(sigma_ve(gamma)) * eps_x  # [M, 3]
    x = _recentre_and_check(x, z_h, layout, where)
    return state_to_batch(x, z_h, layout)


def sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    num_atoms: Tensor | Sequence[int] | None = None,
    *,
    node_distribution: NodeCountDistribution | None = None,
    num_molecules: int | None = None,
    sampler: SamplerName = DEFAULT_SAMPLER,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    churn: float = 0.0,
    rho: float = DEFAULT_RHO,
    sigma_max: float | None = None,
    sigma_min: float | None = None,
    t_mapping: TimeMapping = "interpolate",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> MoleculeBatch:
    """Sample molecules from an EDM model.

    Atom counts: `num_atoms` [B] as given (each must be supported by `node_distribution` when one is given), or
    `num_molecules` counts drawn from `node_distribution` (`atom_counts`). Steps default to DEFAULT_STEPS.
    Samplers:
      "ancestral": EDM's sampler on `ancestral_grid(T, steps)` (EDM's protocol: steps = T, all 1000 steps);
        network evaluations = steps + 1.
      "heun": `sample_heun` on `karras_sigmas(sigma_min, sigma_max, steps, rho)`;
        sigma_max / sigma_min default to the schedule's sigma_ve at t = T / t = 0; network evaluations =
        2 * steps + 1. t_mapping="interpolate" feeds the network the interpolated time of each sigma;
        "nearest" first snaps the grid to the schedule's T + 1 points (so the network only sees times it was
        trained at; repeated points are dropped).
    Every random draw (counts, z_T, step noise) uses `generator`, which must live on `device` (default: the
    schedule's device): the same seed gives identical molecules.
    """
    device = torch.device(device) if device is not None else schedule.gamma_table.device
    counts = atom_counts(node_distribution, num_molecules, generator, num_atoms=num_atoms)  # [B]
    layout = MoleculeLayout.from_num_atoms(counts.to(device))
    start = initial_state(layout, generator, dtype, device)
    if sampler == "ancestral":
        grid = ancestral_grid(schedule.timesteps, DEFAULT_STEPS[sampler] if steps is None else steps)  # [K + 1]
        return sample_ancestral(denoiser, schedule, start, grid, generator, callback)
    if sampler == "heun":
        table_sigmas = sigma_ve(schedule.gamma_table[[0, -1]].cpu())  # [2]
        sigmas = karras_sigmas(
            float(table_sigmas[0]) if sigma_min is None else sigma_min,
            float(table_sigmas[1]) if sigma_max is None else sigma_max,
            DEFAULT_STEPS[sampler] if steps is None else steps,
            rho,
        )  # [K + 1]
        if t_mapping == "nearest":
            sigmas = snap_to_table(schedule, sigmas)
        elif t_mapping != "interpolate":
            raise ValueError(f"t_mapping must be 'interpolate' or 'nearest', got {t_mapping!r}")
        return sample_heun(denoiser, schedule, start, sigmas, generator, callback, churn=churn)
    raise ValueError(f"sampler must be 'ancestral' or 'heun', got {sampler!r}")


def atom_counts(
    node_distribution: NodeCountDistribution | None,
    num_molecules: int | None = None,
    generator: torch.Generator | None = None,
    *,
    num_atoms: Tensor | Sequence[int] | None = None,
    above: int = 0,
) -> Tensor:
    """The atom count of every molecule to sample, int64 [B] on the CPU: `num_atoms` as given (checked against
    p(N) when there is one), or `num_molecules` counts drawn from p(N | N > above) (above = 0: p(N) itself).

    ValueError names what is wrong (no counts, a count < 1, both or neither way, a count p(N) never drew).
    """
    if num_atoms is not None:
        if num_molecules is not None:
            raise ValueError("give either num_atoms or num_molecules (with node_distribution), not both")
        counts = torch.as_tensor(num_atoms, dtype=torch.int64).flatten().cpu()  # [B]
        if counts.numel() == 0 or (counts < 1).any():
            raise ValueError(f"num_atoms must hold at least one count, all >= 1; got {counts.tolist()}")
        if node_distribution is not None:
            node_distribution.check_supported(counts)
        return counts
    if node_distribution is None or num_molecules is None:
        raise ValueError("give num_atoms, or node_distribution and num_molecules")
    if num_molecules < 1:
        raise ValueError(f"num_molecules must be >= 1, got {num_molecules}")
    if above > 0:
        histogram = node_distribution.histogram.clone()  # [N_max + 1]
        histogram[: above + 1] = 0
        node_distribution = NodeCountDistribution(histogram)
    return node_distribution.sample(num_molecules, generator).cpu()  # [B]


def _network(
    denoiser: Denoiser, z_x: Tensor, z_h: Tensor, t: float, layout: MoleculeLayout, where: str
) -> tuple[Tensor, Tensor]:
    """eps_hat from the denoiser at time t for every molecule; SamplingError if it holds NaN or inf."""
    t_batch = torch.full((layout.num_molecules,), t, dtype=z_x.dtype, device=z_x.device)  # [B]
    eps_hat_x, eps_hat_h = call_denoiser(denoiser, z_x, z_h, t_batch, layout)  # [M, 3], [M, 6]
    if not (torch.isfinite(eps_hat_x).all() and torch.isfinite(eps_hat_h).all()):
        raise SamplingError(f"the network output holds NaN or inf at {where}")
    return eps_hat_x, eps_hat_h


def _ve_derivative(
    denoiser: Denoiser, schedule: NoiseSchedule, x_ve: Tensor, h_ve: Tensor, sigma_ve: float, layout: MoleculeLayout,
    where: str,
) -> tuple[Tensor, Tensor]:
    """dx_ve / dsigma_ve = (x_ve - D(x_ve; sigma_ve)) / sigma_ve = eps_hat, the network fed the VP state."""
    t = _t_of_sigma(schedule, sigma_ve)
    scale = 1 / math.sqrt(1 + sigma_ve**2)  # alpha of the VP state
    return _network(denoiser, x_ve * scale, h_ve * scale, t, layout, where)


def _t_of_sigma(schedule: NoiseSchedule, sigma_ve: float) -> float:
    """The time t in [0, 1] whose interpolated gamma is 2 log sigma_ve."""
    gamma = torch.tensor(2 * math.log(sigma_ve), dtype=torch.float64, device=schedule.gamma_table.device)
    return float(schedule.t_from_gamma(gamma))


def _recentre_and_check(z_x: Tensor, z_h: Tensor, layout: MoleculeLayout, where: str) -> Tensor:
    """Re-centre the positions per molecule; SamplingError if the state holds NaN or inf. Returns z_x [M, 3]."""
    if not (torch.isfinite(z_x).all() and torch.isfinite(z_h).all()):
        raise SamplingError(f"the sampler state holds NaN or inf after {where}")
    return remove_centroid(z_x, layout.batch, layout.num_molecules)  # [M, 3]


def _check_ancestral_grid(grid: Tensor, timesteps: int) -> None:
    """ValueError unless grid [K + 1] is strictly decreasing integers from <= T to 0."""
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"grid must be a 1-D tensor of at least 2 steps, got shape {tuple(grid.shape)}")
    if int(grid[0]) > timesteps or int(grid[-1]) != 0 or not (grid[1:] < grid[:-1]).all():
        raise ValueError(f"grid must be strictly decreasing integer steps from at most T={timesteps} to 0")


def _check_sigmas(sigmas: Tensor, schedule: NoiseSchedule) -> None:
    """ValueError unless sigmas [K + 1] is strictly decreasing within the schedule's sigma_ve range."""
    low, high = (float(sigma_ve(g)) for g in schedule.gamma_table[[0, -1]])
    if sigmas.ndim != 1 or sigmas.numel() < 2 or not (sigmas[1:] < sigmas[:-1]).all():
        raise ValueError("sigmas must be a strictly decreasing grid of at least 2 noise levels")
    if float(sigmas[-1]) < low * (1 - 1e-9) or float(sigmas[0]) > high * (1 + 1e-9):
        raise ValueError(f"sigmas must lie in the schedule's sigma_ve range [{low:.4g}, {high:.4g}]")
