"""DPM-Solver++(2M): Lu, Zhou, Bao, Chen, Li and Zhu 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models" (arXiv:2211.01095), Algorithm 2, on EDM's VP ε-model.

The multistep second-order solver of the probability-flow ODE in its data-prediction form. With
lambda_t = log(alpha_t / sigma_t) = -gamma_t / 2, x_theta(z_t, t) = (z_t - sigma_t eps_hat) / alpha_t (the paper's
Eq. 7) and h_i = lambda_{t_i} - lambda_{t_{i-1}}:
    step 1:       z_{t_1} = (sigma_{t_1} / sigma_{t_0}) z_{t_0} - alpha_{t_1} (e^{-h_1} - 1) x_theta(z_{t_0}, t_0)
    steps i >= 2: r_i = h_{i-1} / h_i,
                  D_i = (1 + 1 / (2 r_i)) x_theta(z_{t_{i-1}}, t_{i-1}) - 1 / (2 r_i) x_theta(z_{t_{i-2}}, t_{i-2}),
                  z_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) z_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i.
The grid is uniform in lambda (the paper's choice for few steps) from t = 1 down to t = 1 / T, the schedule's
smallest noise level above t = 0; EDM's final step follows at t = 1 / T. One network evaluation per step, plus one
for the final step. The network sees each t of the grid directly (gamma interpolated between table steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch
from molgen.diffusion.schedule import NoiseSchedule, alpha, sigma, sigma_ve
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


def logsnr_grid(schedule: NoiseSchedule, steps: int) -> Tensor:
    """Times t, float64 [steps + 1], from 1 down to 1 / T, uniform in lambda_t = -gamma_t / 2 (interpolated table)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    gamma = schedule.gamma_table.cpu()  # [T + 1]
    lambdas = torch.linspace(-0.5 * float(gamma[-1]), -0.5 * float(gamma[1]), steps + 1, dtype=torch.float64)
    times = schedule.t_from_gamma(-2 * lambdas.to(schedule.gamma_table.device)).cpu()  # [steps + 1]
    times[0], times[-1] = 1.0, 1.0 / schedule.timesteps  # the ends exactly
    return times


def sample_dpmpp2m(
    model: EpsModel,
    start: SamplerState,
    grid: Tensor,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    modifiers: Sequence[EpsModifier] = (),
) -> MoleculeBatch:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) from z at grid[0] down the times of `grid`, then EDM's final step.

    Shapes: grid float [K + 1], strictly decreasing times in (0, 1] (`logsnr_grid`). Deterministic but for the final
    step's noise; `callback` may replace each state reached (the earlier data predictions are kept).
    """
    times = grid.to(torch.float64).cpu()
    if times.ndim != 1 or times.numel() < 2 or not (times[1:] < times[:-1]).all() or times[-1] <= 0 or times[0] > 1:
        raise ValueError("grid must be strictly decreasing times in (0, 1], at least 2 of them")
    gamma = model.schedule.gamma_continuous(times.to(model.schedule.gamma_table.device)).cpu()  # [K + 1] float64
    state, history = start, None
    num_steps = times.numel() - 1
    for i in range(num_steps):
        t, s = float(times[i]), float(times[i + 1])
        where = f"step {i} of {num_steps} (t = {t:.4g})"
        x_x, x_h = data_prediction(model, state, t, gamma[i], where, modifiers)  # [M, 3], [M, 6]
        h = 0.5 * float(gamma[i] - gamma[i + 1])  # lambda_s - lambda_t > 0
        d_x, d_h = (x_x, x_h) if history is None else second_order(x_x, x_h, history, h)  # [M, 3], [M, 6]
        z_x, z_h = dpm_solver_update(state, d_x, d_h, gamma[i], gamma[i + 1], h)  # [M, 3], [M, 6]
        z_x = recentre_and_check(z_x, z_h, state.layout, where)
        info = StepInfo(i, num_steps, t, s, float(sigma_ve(gamma[i + 1])), z_x, z_h, state.layout)
        state, history = call_hook(callback, info) or info.state, (x_x, x_h, h)
    return final_step(model, state, generator, float(times[-1]), modifiers)


def data_prediction(
    model: EpsModel, state: SamplerState, t: float, gamma_t: Tensor, where: str, modifiers: Sequence[EpsModifier]
) -> tuple[Tensor, Tensor]:
    """x_theta(z_t, t) = (z_t - sigma_t eps_hat) / alpha_t, eps_hat after the ε-modifiers: ([M, 3], [M, 6])."""
    alpha_t, sigma_t = float(alpha(gamma_t)), float(sigma(gamma_t))
    eps_x, eps_h = model.eps(state.z_x, state.z_h, t, state.layout, where, modifiers)  # [M, 3], [M, 6]
    return (state.z_x - sigma_t * eps_x) / alpha_t, (state.z_h - sigma_t * eps_h) / alpha_t


def second_order(x_x: Tensor, x_h: Tensor, history: tuple[Tensor, Tensor, float], h: float) -> tuple[Tensor, Tensor]:
    """D_i = (1 + 1 / (2 r)) x_theta(now) - 1 / (2 r) x_theta(before), r = h_before / h: ([M, 3], [M, 6])."""
    before_x, before_h, h_before = history
    weight = 1 / (2 * (h_before / h))
    return (1 + weight) * x_x - weight * before_x, (1 + weight) * x_h - weight * before_h


def dpm_solver_update(
    state: SamplerState, d_x: Tensor, d_h: Tensor, gamma_t: Tensor, gamma_s: Tensor, h: float
) -> tuple[Tensor, Tensor]:
    """z_s = (sigma_s / sigma_t) z_t - alpha_s (e^{-h} - 1) D, the data-prediction update from t to s < t."""
    ratio = float(sigma(gamma_s)) / float(sigma(gamma_t))
    weight = float(alpha(gamma_s)) * math.expm1(-h)
    return ratio * state.z_x - weight * d_x, ratio * state.z_h - weight * d_h
