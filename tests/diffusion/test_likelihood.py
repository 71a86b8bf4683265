"""The VLB / NLL: prior KL, discrete L0 terms, exactness on Gaussian data, E(3) invariance, evaluate_nll."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.diffusion import (
    LikelihoodError,
    NodeCountDistribution,
    NoiseSchedule,
    PolynomialSchedule,
    batch_to_state,
    evaluate_nll,
    kl_prior,
    sample_noise,
    variational_nll,
)
from molgen.diffusion.discrete import neg_log_p_charge_given_z0, neg_log_p_one_hot_given_z0

from .standins import EquivariantDenoiser, GaussianDenoiser

HAND_MADE_GAMMA = torch.tensor([-10.0, -6.0, -2.0, 1.0, 2.5], dtype=torch.float64)  # T = 4


def _molecules(sizes: list[int], seed: int = 0, scale: float = 1.0) -> MoleculeBatch:
    generator = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    x = scale * torch.randn(total, 3, generator=generator, dtype=torch.float64)  # [M, 3]
    types = torch.randint(0, 5, (total,), generator=generator)  # [M]
    return MoleculeBatch.from_arrays(x, types, torch.tensor(sizes))


def _centroid_free_basis(num_atoms: int) -> torch.Tensor:
    """Orthonormal basis [N, N - 1] of the vectors with zero sum."""
    centering = torch.eye(num_atoms, dtype=torch.float64) - 1.0 / num_atoms  # [N, N]
    eigenvalues, eigenvectors = torch.linalg.eigh(centering)
    return eigenvectors[:, eigenvalues > 0.5]  # [N, N - 1]


def test_kl_prior_matches_closed_form_gaussian_kl() -> None:
    schedule = NoiseSchedule(HAND_MADE_GAMMA)
    batch = _molecules([4, 6], seed=1)
    x, h = batch_to_state(batch, torch.float64)
    gamma_T = schedule.gamma_table[-1]
    kl_x, kl_h = kl_prior(x, h, gamma_T, batch.layout)
    alpha_T, sigma_T = schedule.alpha_table[-1], schedule.sigma_table[-1]
    for i, (start, end) in enumerate(zip(batch.ptr[:-1].tolist(), batch.ptr[1:].tolist())):
        basis = _centroid_free_basis(end - start)  # [N, N - 1]
        y = (basis.T @ x[start:end]).flatten()  # [(N - 1) * 3] subspace coordinates
        d = y.numel()
        q = torch.distributions.MultivariateNormal(alpha_T * y, sigma_T**2 * torch.eye(d, dtype=torch.float64))
        p = torch.distributions.MultivariateNormal(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
        torch.testing.assert_close(kl_x[i], torch.distributions.kl_divergence(q, p))
        q_h = torch.distributions.Normal(alpha_T * h[start:end], sigma_T)
        p_h = torch.distributions.Normal(torch.zeros_like(h[start:end]), 1.0)
        torch.testing.assert_close(kl_h[i], torch.distributions.kl_divergence(q_h, p_h).sum())


def _bin_mass(mean: torch.Tensor, scale: float, low: torch.Tensor, high: torch.Tensor, points: int = 20001) -> torch.Tensor:
    """Trapezoid integral of the N(mean, scale^2) density over [low, high], float64, elementwise."""
    u = torch.linspace(0, 1, points, dtype=torch.float64)  # [P]
    grid = low.unsqueeze(-1) + (high - low).unsqueeze(-1) * u  # [..., P]
    density = torch.exp(-0.5 * ((grid - mean.unsqueeze(-1)) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    return torch.trapezoid(density, grid, dim=-1)


def test_discrete_l0_terms_match_numerical_integration() -> None:
    generator = torch.Generator().manual_seed(2)
    sigma_0 = torch.tensor(0.03, dtype=torch.float64)  # 10 sigma_0 = 0.3: bins of mass well inside (0, 1)
    charge = torch.tensor([1.0, 6.0, 7.0, 8.0, 9.0, 6.0], dtype=torch.float64)
    z0_charge = (charge + torch.tensor([0.0, 0.3, -0.45, 0.6, -0.2, 1.2], dtype=torch.float64)) / 10
    mass = _bin_mass(10 * z0_charge, 0.3, charge - 0.5, charge + 0.5)
    expected = -torch.log(mass + 1e-10)
    torch.testing.assert_close(neg_log_p_charge_given_z0(z0_charge, charge, sigma_0, 10.0), expected, rtol=1e-7, atol=1e-9)

    atom_type = torch.tensor([0, 1, 2, 3, 4, 1])
    z0_one_hot = torch.nn.functional.one_hot(atom_type, 5).double() / 4 + 0.04 * torch.randn(6, 5, generator=generator, dtype=torch.float64)
    masses = _bin_mass(4 * z0_one_hot, 4 * 0.03, torch.full((6, 5), 0.5, dtype=torch.float64), torch.full((6, 5), 1.5, dtype=torch.float64))
    log_p = torch.log_softmax(torch.log(masses + 1e-10), dim=1)
    expected = -log_p[torch.arange(6), atom_type]
    torch.testing.assert_close(neg_log_p_one_hot_given_z0(z0_one_hot, atom_type, sigma_0, 4.0), expected, rtol=1e-7, atol=1e-9)


def _expected_gap(schedule: NoiseSchedule, d: int, s2: float) -> float:
    """E_x,eps[position VLB] - E_x[-log N(x; 0, s^2 I_d)] for the Bayes-optimal denoiser, in closed form."""
    gamma = schedule.gamma_table
    alpha2, sigma2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
    residual = alpha2 * s2 / (alpha2 * s2 + sigma2)  # E (eps - eps_hat)^2 per dimension
    kl = d * (-0.5 * torch.log(sigma2[-1]) + 0.5 * sigma2[-1] - 0.5) + 0.5 * alpha2[-1] * d * s2
    diffusion = (0.5 * torch.expm1(gamma[1:] - gamma[:-1]) * d * residual[1:]).sum()
    constant = d * (0.5 * gamma[0] + 0.5 * math.log(2 * math.pi))
    l0 = 0.5 * d * residual[0]
    entropy = 0.5 * d * math.log(2 * math.pi * math.e * s2)
    return float(kl + diffusion + constant + l0 - entropy)


def test_gaussian_data_vlb_is_tight_bound() -> None:
    """Positions ~ N(0, s^2) on the (N - 1) * 3 subspace with the exact denoiser: the bound lies above -log p(x)
    by the closed-form gap (about 470, 33 and 4.6 nats for T = 50, 200, 1000), shrinking as T grows."""
    num_molecules, num_atoms, scale = 64, 5, 1.3
    d = (num_atoms - 1) * 3
    data = _molecules([num_atoms] * num_molecules, seed=3, scale=scale)
    x = data.x.reshape(num_molecules, num_atoms, 3)
    neg_log_density = 0.5 * d * math.log(2 * math.pi * scale**2) + (x**2).sum(dim=(1, 2)) / (2 * scale**2)  # [B]
    gaps = []
    for timesteps in (50, 200, 1000):
        schedule = PolynomialSchedule(timesteps)
        # every molecule at every t = 1..T (the exact average over t), fresh noise for each copy
        copies = MoleculeBatch.collate([data] * timesteps)
        t_int = torch.arange(1, timesteps + 1).repeat_interleave(num_molecules)  # [T * B]
        terms = variational_nll(GaussianDenoiser(schedule, scale), schedule, copies, None,
                                torch.Generator().manual_seed(timesteps), t_int=t_int)
        bound = terms.position_part.reshape(timesteps, num_molecules).mean(0)  # [B]
        gap = bound - neg_log_density  # [B]
        mean, standard_error = float(gap.mean()), float(gap.std() / math.sqrt(num_molecules))
        expected = _expected_gap(schedule, d, scale**2)
        assert abs(mean - expected) < 4 * standard_error + 1e-3 * abs(expected), (timesteps, mean, expected, standard_error)
        assert mean - 4 * standard_error > 0
        print(f"T={timesteps}: gap {mean:.3f} +- {standard_error:.3f} nats, closed form {expected:.3f}")
        gaps.append(mean)
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2] > 0


def _random_orthogonal(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # [3, 3], a rotation or a reflection


def test_nll_invariant_to_rotation_and_translation() -> None:
    schedule = PolynomialSchedule(1000)
    denoiser = EquivariantDenoiser()
    batch = _molecules([4, 7], seed=4)
    histogram = NodeCountDistribution(torch.tensor([0, 0, 0, 0, 3, 0, 0, 5.0]))
    t_int = torch.tensor([3, 700])
    reference = variational_nll(denoiser, schedule, batch, histogram, torch.Generator().manual_seed(9), t_int=t_int)
    shifted = batch.with_positions(batch.x + torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64))
    translated = variational_nll(denoiser, schedule, shifted, histogram, torch.Generator().manual_seed(9), t_int=t_int)
    torch.testing.assert_close(translated.total, reference.total, rtol=0, atol=1e-9)
    # rotate the molecule and its noise together (the noise is drawn in a fixed frame)
    generator = torch.Generator().manual_seed(10)
    noise = sample_noise(batch.layout, torch.float64, generator=generator)
    noise_0 = sample_noise(batch.layout, torch.float64, generator=generator)
    original = variational_nll(denoiser, schedule, batch, histogram, t_int=t_int, noise=noise, noise_0=noise_0)
    for seed in range(3):
        rotation = _random_orthogonal(seed)
        moved = batch.with_positions(batch.x @ rotation.T + torch.tensor([0.3, 0.1, -4.0], dtype=torch.float64))
        rotated = variational_nll(denoiser, schedule, moved, histogram, t_int=t_int,
                                  noise=(noise[0] @ rotation.T, noise[1]), noise_0=(noise_0[0] @ rotation.T, noise_0[1]))
        torch.testing.assert_close(rotated.total, original.total, rtol=0, atol=1e-9)
    assert (original.total != reference.total).all()  # a different noise draw does change the estimate


def test_terms_total_and_clean_discrete_terms() -> None:
    schedule = PolynomialSchedule(1000)
    batch = _molecules([3, 5], seed=5)
    histogram = NodeCountDistribution(torch.tensor([0, 0, 0, 1, 0, 3.0]))
    terms = variational_nll(EquivariantDenoiser(), schedule, batch, histogram, torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms.neg_log_p_num_atoms, -torch.log(torch.tensor([0.25, 0.75], dtype=torch.float64)))
    torch.testing.assert_close(terms.constant_x, torch.tensor([6.0, 12.0], dtype=torch.float64) *
                               (0.5 * schedule.gamma_table[0] + 0.5 * math.log(2 * math.pi)))
    assert terms.l0_charge.abs().max() < 1e-6 and terms.l0_one_hot.abs().max() < 1e-6  # z_0 within ~15 sigma_0
    assert (terms.t_int >= 1).all() and (terms.t_int <= 1000).all()
    parts = (terms.kl_prior_x + terms.kl_prior_h + terms.diffusion_x + terms.diffusion_h + terms.constant_x
             + terms.l0_x + terms.l0_charge + terms.l0_one_hot + terms.neg_log_p_num_atoms)
    torch.testing.assert_close(terms.total, parts)


def test_nll_does_not_depend_on_denoiser_precision() -> None:
    schedule = PolynomialSchedule(1000)
    batch = _molecules([6, 9], seed=6)
    t_int = torch.tensor([1, 400])
    high = variational_nll(EquivariantDenoiser(dtype=torch.float64), schedule, batch, None, torch.Generator().manual_seed(1), t_int=t_int)
    low = variational_nll(EquivariantDenoiser(dtype=torch.float32), schedule, batch, None, torch.Generator().manual_seed(1), t_int=t_int)
    assert high.total.dtype == low.total.dtype == torch.float64
    torch.testing.assert_close(low.total, high.total, rtol=1e-5, atol=1e-3)


def test_evaluate_nll_mean_error_and_determinism() -> None:
    schedule = PolynomialSchedule(100)
    denoiser = EquivariantDenoiser()
    batches = [_molecules([3, 4], seed=7), _molecules([5], seed=8), _molecules([4, 4, 3], seed=9)]
    histogram = NodeCountDistribution.from_num_atoms(torch.tensor([3, 4, 4, 5]))
    result = evaluate_nll(denoiser, schedule, batches, histogram, generator=11, progress=False)
    generator = torch.Generator().manual_seed(11)
    manual = torch.cat([variational_nll(denoiser, schedule, b, histogram, generator).total for b in batches])
    assert result.num_molecules == 6
    assert result.mean == pytest.approx(float(manual.mean()), rel=1e-12)
    assert result.standard_error == pytest.approx(float(manual.std() / math.sqrt(6)), rel=1e-12)
    assert evaluate_nll(denoiser, schedule, iter(batches), histogram, generator=11, progress=False) == result
    two_passes = evaluate_nll(denoiser, schedule, batches, histogram, passes=2, generator=11, progress=False)
    assert two_passes.num_molecules == 6 and two_passes.mean != result.mean
    denoiser.train()
    evaluate_nll(denoiser, schedule, batches[:1], histogram, generator=0, progress=False)
    assert denoiser.training  # put in eval mode for the evaluation, then restored


def test_non_finite_network_output_raises() -> None:
    schedule = PolynomialSchedule(100)
    batch = _molecules([3, 4])

    def broken(z_x, z_h, t, layout):
        return torch.full_like(z_x, float("nan")), z_h

    with pytest.raises(LikelihoodError, match="NaN"):
        variational_nll(broken, schedule, batch)
