"""DPM-Solver++(2M) on Gaussian data, where the exact ε-model and the exact probability-flow ODE are known in closed
form: positions ~ N(0, s^2) on the zero-centroid subspace have eps(z_t, t) = sigma_t z_t / (alpha_t^2 s^2 + sigma_t^2)
and the ODE path x_ve(sigma) = x_ve(sigma_max) sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2)) in the VE view."""

from __future__ import annotations

import math

import torch

from molgen.batch import MoleculeLayout
from molgen.diffusion import EpsModel, PolynomialSchedule, initial_state, logsnr_grid, sample, sample_dpmpp2m

from .standins import GaussianDenoiser

SCALE = 1.5
SCHEDULE = PolynomialSchedule(1000)


class SmoothGaussian(GaussianDenoiser):
    """The exact Gaussian ε-model at the interpolated gamma of t (a network smooth in t)."""

    def __call__(self, z_x, z_h, t, layout):
        gamma = self.schedule.gamma_continuous(t)[layout.batch].unsqueeze(1)  # [M, 1]
        alpha2, sigma2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)  # [M, 1]
        return (sigma2.sqrt() * z_x / (alpha2 * self.scale**2 + sigma2)).to(z_x.dtype), torch.zeros_like(z_h)


def _ode_error(steps: int) -> float:
    """RMS distance (Å per atom) of the state at t = 1/T from the exact ODE solution from the same z_T."""
    start = initial_state(MoleculeLayout.from_num_atoms(torch.full((32,), 8)), torch.Generator().manual_seed(0),
                          torch.float64)
    last = {}
    sample_dpmpp2m(EpsModel(SmoothGaussian(SCHEDULE, SCALE), SCHEDULE), start, logsnr_grid(SCHEDULE, steps),
                   callback=lambda info: last.update(z=info.z_x, level=info.sigma_ve))
    x_end = last["z"] * math.sqrt(1 + last["level"] ** 2)  # [M, 3] the VE state
    level_max = math.exp(0.5 * float(SCHEDULE.gamma_table[-1]))
    exact = start.z_x * math.sqrt(1 + level_max**2) * math.sqrt((SCALE**2 + last["level"] ** 2) / (SCALE**2 + level_max**2))
    return float(((x_end - exact) ** 2).sum(1).mean().sqrt())


def test_converges_to_the_exact_ode_solution_at_second_order():
    """Errors 0.098, 0.042, 0.012, 0.0030 Å at 10, 20, 40, 80 steps: the ratio tends to 4, a second-order method's.
    (Heun on its Karras grid: 0.50, 0.11, 0.026 at 10, 20, 40 steps, with twice the network evaluations.)"""
    errors = [_ode_error(steps) for steps in (10, 20, 40, 80)]
    assert errors[0] < 0.15 and errors[3] < 4e-3
    assert errors[0] > 2 * errors[1] > 2 * 2 * errors[2]
    assert errors[2] > 3.5 * errors[3]


def test_samples_have_the_data_distribution():
    """20 steps on the table's ε-model (the network sees interpolated times): the positions' variance per degree of
    freedom of the zero-centroid subspace is s^2 within 4 standard errors (2 / dof)^(1/2) of the estimate."""
    batch = sample(GaussianDenoiser(SCHEDULE, SCALE), SCHEDULE, [8] * 256, sampler="dpmpp2m", steps=20,
                   generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dof = 256 * 7 * 3
    variance = float((batch.x**2).sum()) / dof
    assert abs(variance / SCALE**2 - 1) < 4 * math.sqrt(2 / dof), variance


def test_the_grid_is_uniform_in_log_snr_from_t_1_to_1_over_T():
    times = logsnr_grid(SCHEDULE, 12)
    assert times.shape == (13,) and float(times[0]) == 1.0 and float(times[-1]) == 1 / SCHEDULE.timesteps
    lambdas = -0.5 * SCHEDULE.gamma_continuous(times)  # [13] log(alpha / sigma)
    torch.testing.assert_close(lambdas.diff(), lambdas.diff()[:1].expand(12), rtol=1e-9, atol=0)
    torch.testing.assert_close(lambdas[[0, -1]], -0.5 * SCHEDULE.gamma_table[[-1, 1]], rtol=0, atol=1e-12)


def test_one_network_call_per_step_plus_the_final_step_at_1_over_T():
    seen = []

    def counting(z_x, z_h, t, layout):
        seen.append(float(t[0]))
        return GaussianDenoiser(SCHEDULE, SCALE)(z_x, z_h, t, layout)

    sample(counting, SCHEDULE, [5, 4], sampler="dpmpp2m", steps=7, generator=torch.Generator().manual_seed(0))
    assert seen == logsnr_grid(SCHEDULE, 7).float().tolist()  # steps at t_0 .. t_6, the final step at t_7 = 1/T
