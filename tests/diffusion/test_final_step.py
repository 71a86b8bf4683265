"""EDM's final step p(x, h | z_0) directly: its mean (z_0 - sigma_0 eps_hat) / alpha_0 exactly, and its added noise
of spread sigma_0 / alpha_0 in distribution.

For EDM's schedule (precision s = 1e-5) alpha_0^2 = 1 - s and sigma_0^2 = s (the raw polynomial is 1 at t = 0), so
sigma_0 / alpha_0 = sqrt(s / (1 - s)) = 3.1623e-3 Å: a noise too small for any test on whole samples to see.
"""

from __future__ import annotations

import math

import torch

from molgen.batch import MoleculeLayout
from molgen.diffusion import EpsModel, PolynomialSchedule, SamplerState, final_step

PRECISION = 1e-5
ALPHA_0, SIGMA_0 = math.sqrt(1 - PRECISION), math.sqrt(PRECISION)  # by hand, EDM's definitions
SPREAD = SIGMA_0 / ALPHA_0  # 3.1623e-3


def _state(layout: MoleculeLayout, seed: int) -> SamplerState:
    """A zero-centroid state of Å-sized positions; the features one-hot-like at 1/4 plus small noise."""
    generator = torch.Generator().manual_seed(seed)
    num = layout.batch.numel()
    z_x = torch.randn(num, 3, generator=generator, dtype=torch.float64)  # [M, 3]
    z_x = z_x - torch.zeros(layout.num_molecules, 3, dtype=torch.float64).index_add_(0, layout.batch, z_x)[
        layout.batch] / layout.num_atoms[layout.batch].unsqueeze(1)  # [M, 3]
    z_h = 0.01 * torch.randn(num, 6, generator=generator, dtype=torch.float64)  # [M, 6]
    return SamplerState(z_x, z_h, layout)


class _Scaled:
    """eps_hat_x = c z_x (zero centroid as z_x), eps_hat_h = 0; remembers the times it was called at."""

    def __init__(self, c: float) -> None:
        self.c, self.times = c, []

    def __call__(self, z_x, z_h, t, layout):
        self.times.append(t.clone())
        return self.c * z_x, torch.zeros_like(z_h)


def test_final_step_mean_is_z0_minus_sigma0_eps_hat_over_alpha0():
    """Two states, one noise draw: x1 - x2 = (1 - sigma_0 c)(z1 - z2) / alpha_0 exactly; the network is asked at t = 0.

    With c = 100, sigma_0 c = 0.316: a wrong sigma (gamma_1: 0.346), a dropped 1/alpha_0 (5e-6 relative) or a sign
    error all miss the 1e-10 tolerance (the table's sigma_0 = sqrt(1 - (1 - s)) carries a 1e-11 rounding).
    """
    schedule = PolynomialSchedule(1000, PRECISION)
    layout = MoleculeLayout.from_num_atoms(torch.tensor([3, 7, 5]))
    denoiser = _Scaled(100.0)
    first, second = _state(layout, 0), _state(layout, 1)
    x1 = final_step(EpsModel(denoiser, schedule), first, torch.Generator().manual_seed(9)).x
    x2 = final_step(EpsModel(denoiser, schedule), second, torch.Generator().manual_seed(9)).x
    expected = (1 - SIGMA_0 * denoiser.c) * (first.z_x - second.z_x) / ALPHA_0  # [M, 3]
    torch.testing.assert_close(x1 - x2, expected, rtol=0, atol=1e-10)
    assert all(torch.equal(t, torch.zeros(3, dtype=torch.float64)) for t in denoiser.times)


def test_final_step_decodes_the_features_from_z0_not_the_network():
    """Atom type = argmax of z_0's one-hot part, charge = round(10 z_0's charge part), whatever eps_hat_h says."""
    layout = MoleculeLayout.from_num_atoms(torch.tensor([2, 3]))
    state = _state(layout, 2)
    types = torch.tensor([1, 0, 4, 3, 2])
    z_h = state.z_h.clone()
    z_h[torch.arange(5), types] += 0.25
    z_h[:, 5] = torch.tensor([6.0, 1.0, 9.0, 8.0, 7.0]) / 10 + torch.tensor([0.04, -0.04, 0.03, -0.02, 0.0])

    def misleading(z_x, z_h, t, layout):
        return torch.zeros_like(z_x), 100 * torch.randn_like(z_h)

    batch = final_step(EpsModel(misleading, PolynomialSchedule(100)), SamplerState(state.z_x, z_h, layout),
                       torch.Generator().manual_seed(0))
    assert batch.atom_type.tolist() == types.tolist()
    assert batch.charge.tolist() == [6, 1, 9, 8, 7]


def test_final_step_noise_spread_is_sigma0_over_alpha0_in_distribution():
    """With eps_hat = 0 the added noise is r = x - z_0 / alpha_0 = SPREAD * eps, eps zero-centroid per molecule, so
    each molecule's Q = ||r||^2 / SPREAD^2 is chi^2 with 3 (N - 1) degrees of freedom.

    4,000 molecules of 10 atoms, D = 108,000 degrees of freedom in all:
    - the pooled spread sqrt(sum ||r||^2 / D) has a relative standard error 1 / sqrt(2 D) = 0.22 %; the test allows
      5 standard errors (1.1 %, 3.4e-5 Å). Its power is > 0.99 against any change of the spread by more than 1.6 %
      (5e-5 Å): a dropped noise (a change of 0.0032 Å) is 460 standard errors off, gamma_1 for gamma_0 (+9.4 %) 44.
    - the Kolmogorov-Smirnov distance of the 4,000 values of chi^2_27's CDF at Q from the uniform stays below the
      0.1 % critical value 1.95 / sqrt(4000) = 0.031.
    """
    schedule = PolynomialSchedule(1000, PRECISION)
    num_molecules, atoms = 4000, 10
    layout = MoleculeLayout.from_num_atoms(torch.full((num_molecules,), atoms))
    state = _state(layout, 3)
    x = final_step(EpsModel(_Scaled(0.0), schedule), state, torch.Generator().manual_seed(4)).x  # [M, 3]
    residual = x - state.z_x / ALPHA_0  # [M, 3]
    q = (residual**2).sum(dim=1).reshape(num_molecules, atoms).sum(dim=1) / SPREAD**2  # [B]
    dof = 3 * (atoms - 1)
    pooled = math.sqrt(float(q.sum()) / (dof * num_molecules))  # spread / SPREAD
    assert abs(pooled - 1) < 5 / math.sqrt(2 * dof * num_molecules), pooled
    cdf = torch.special.gammainc(torch.tensor(dof / 2, dtype=torch.float64), q / 2).sort().values  # [B]
    grid = torch.arange(1, num_molecules + 1, dtype=torch.float64) / num_molecules  # [B]
    distance = max(float((grid - cdf).abs().max()), float((cdf - (grid - 1 / num_molecules)).abs().max()))
    assert distance < 1.95 / math.sqrt(num_molecules), distance
