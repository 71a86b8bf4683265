"""Samplers for an EDM model, k-diffusion style: free functions with one signature,
`sample_x(model, start, grid, generator, callback, modifiers, **options) -> MoleculeBatch`, found by name in the
sampler table (`molgen.choices.SAMPLER_TABLE`, free of torch) with the function making their time grid.

- `sample_ancestral`: EDM's ancestral sampler p(z_s | z_t) (Hoogeboom et al. 2022, Alg. 2) on a decreasing grid of
  integer steps: all T steps (EDM), or a strided subset (`strided_grid`); the t|s quantities between
  non-adjacent steps follow the same formulas.
- `sample_heun` (`molgen.diffusion.heun`): Heun's method on the probability-flow ODE in the variance-exploding view
  (Karras et al. 2022, Alg. 2), on a Karras grid of sigma_ve = exp(gamma / 2), deterministic or with churn.
- `sample_dpmpp2m` (`molgen.diffusion.dpmpp2m`): DPM-Solver++(2M) (Lu et al. 2022) on a logSNR-uniform grid.
All end with EDM's final step and return a `MoleculeBatch`; `sample` wires node counts, grids and start.
The model is the denoiser wrapped once (`molgen.diffusion.steps.EpsModel`); the ε-modifiers change its prediction
before every step, in order. After every step a hook (`molgen.diffusion.steps.StepHook`) sees the state reached and
may return a changed one (a progress bar returns nothing; inpainting puts the fixed atoms back). "sigma" is the VP
noise level sigma_t throughout; the VE level sigma_t / alpha_t = exp(gamma_t / 2) is "sigma_ve".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.choices import DEFAULT_SAMPLER, SAMPLER_TABLE, sampler_spec
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.process import Denoiser, sample_noise
from molgen.diffusion.schedule import NoiseSchedule, alpha_t_given_s, sigma, sigma2_t_given_s, sigma_ve
from molgen.diffusion.steps import (
    EpsModel,
    EpsModifier,
    SamplerState,
    StepHook,
    StepInfo,
    call_hook,
    final_step,
    initial_state,
    recentre_and_check,
)


def ancestral_grid(timesteps: int, steps: int) -> Tensor:
    """A decreasing grid of `steps + 1` distinct integer steps from T to 0, evenly strided, int64 [steps + 1]."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must lie in [1, T={timesteps}], got {steps}")
    return torch.linspace(timesteps, 0, steps + 1, dtype=torch.float64).round().long()  # [steps + 1]


def strided_grid(schedule: NoiseSchedule, steps: int) -> Tensor:
    """The ancestral sampler's grid on a schedule: `ancestral_grid(T, steps)`, int64 [steps + 1]."""
    return ancestral_grid(schedule.timesteps, steps)


def sample_ancestral(
    model: EpsModel,
    start: SamplerState,
    grid: Tensor,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    modifiers: Sequence[EpsModifier] = (),
) -> MoleculeBatch:
    """EDM's ancestral sampler (Alg. 2) from z at grid[0] down the integer grid to 0, then EDM's final step.

    For consecutive grid points t > s: z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps_hat
    + sigma_{t|s} sigma_s / sigma_t * eps, eps with zero-centroid positions. `callback` may replace each z_s.
    Shapes: grid int [K + 1], decreasing, ending at 0.
    """
    schedule, grid = model.schedule, grid.long().cpu()
    _check_ancestral_grid(grid, schedule.timesteps)
    gamma = schedule.gamma_at(grid.to(schedule.gamma_table.device)).cpu()  # [K + 1] float64
    state = start
    num_steps = grid.numel() - 1
    for i in range(num_steps):
        t, s = float(grid[i]) / schedule.timesteps, float(grid[i + 1]) / schedule.timesteps
        where = f"step {i} of {num_steps} (t = {t:.4g})"
        z_x, z_h = ancestral_step(model, state, t, gamma[i], gamma[i + 1], generator, where, modifiers)
        info = StepInfo(i, num_steps, t, s, float(sigma_ve(gamma[i + 1])), z_x, z_h, state.layout)
        state = call_hook(callback, info) or info.state
    return final_step(model, state, generator, modifiers=modifiers)


def ancestral_step(
    model: EpsModel,
    state: SamplerState,
    t: float,
    gamma_t: Tensor,
    gamma_s: Tensor,
    generator: torch.Generator | None = None,
    where: str = "a step",
    modifiers: Sequence[EpsModifier] = (),
) -> tuple[Tensor, Tensor]:
    """One draw from EDM's p(z_s | z_t) (Alg. 2), s < t, positions re-centred; -> z_s as (z_x [M, 3], z_h [M, 6]).

    z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps_hat + sigma_{t|s} sigma_s / sigma_t * eps.
    """
    alpha_ts = float(alpha_t_given_s(gamma_t, gamma_s))
    sigma2_ts = float(sigma2_t_given_s(gamma_t, gamma_s))
    sigma_t, sigma_s = float(sigma(gamma_t)), float(sigma(gamma_s))
    z_x, z_h, layout = state.z_x, state.z_h, state.layout
    eps_hat_x, eps_hat_h = model.eps(z_x, z_h, t, layout, where, modifiers)  # [M, 3], [M, 6]
    eps_x, eps_h = sample_noise(layout, z_x.dtype, z_x.device, generator)  # [M, 3], [M, 6]
    coefficient = sigma2_ts / (alpha_ts * sigma_t)
    noise_scale = math.sqrt(sigma2_ts) * sigma_s / sigma_t
    z_x = z_x / alpha_ts - coefficient * eps_hat_x + noise_scale * eps_x  # [M, 3]
    z_h = z_h / alpha_ts - coefficient * eps_hat_h + noise_scale * eps_h  # [M, 6]
    return recentre_and_check(z_x, z_h, layout, where), z_h


def sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    num_atoms: Tensor | Sequence[int] | None = None,
    *,
    node_distribution: NodeCountDistribution | None = None,
    num_molecules: int | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    modifiers: Sequence[EpsModifier] = (),
    churn: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> MoleculeBatch:
    """Sample molecules from an EDM model with the sampler of that name in `SAMPLER_TABLE`.

    Atom counts: `num_atoms` [B] as given (each must be supported by `node_distribution` when one is given), or
    `num_molecules` counts drawn from `node_distribution` (`atom_counts`). The sampler runs on its table's grid of
    `steps` steps (default: the table's), from z_T ~ N(0, I), with the ε-modifiers applied before every step, in
    order; network evaluations: `SAMPLER_TABLE[sampler].network_calls(steps)` (ancestral with steps = T = 1000 is
    EDM's protocol). `churn` is given to the samplers that take it (heun). Every random draw (counts, z_T, step
    noise) uses `generator`, which must live on `device` (default: the schedule's device): the same seed gives
    identical molecules.
    """
    spec = sampler_spec(sampler)
    if churn and not spec.churn:
        raise ValueError(f"churn applies to the {', '.join(n for n, s in SAMPLER_TABLE.items() if s.churn)} sampler "
                         f"only, not {sampler}")
    device = torch.device(device) if device is not None else schedule.gamma_table.device
    counts = atom_counts(node_distribution, num_molecules, generator, num_atoms=num_atoms)  # [B]
    layout = MoleculeLayout.from_num_atoms(counts.to(device))
    start = initial_state(layout, generator, dtype, device)
    grid = spec.load_grid()(schedule, spec.default_steps if steps is None else steps)  # [K + 1]
    options = {"churn": churn} if spec.churn else {}
    return spec.load()(EpsModel(denoiser, schedule), start, grid, generator, callback, modifiers, **options)


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


def _check_ancestral_grid(grid: Tensor, timesteps: int) -> None:
    """ValueError unless grid [K + 1] is strictly decreasing integers from <= T to 0."""
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"grid must be a 1-D tensor of at least 2 steps, got shape {tuple(grid.shape)}")
    if int(grid[0]) > timesteps or int(grid[-1]) != 0 or not (grid[1:] < grid[:-1]).all():
        raise ValueError(f"grid must be strictly decreasing integer steps from at most T={timesteps} to 0")
