"""EEGSDE's energy guidance eps~ = eps_hat + s sigma_t grad_z E on EDM's ancestral sampler, and p(N | c).

The toy problem: positions ~ N(0, S^2 I) on the zero-centroid subspace, whose Bayes-optimal denoiser is linear
(eps_hat = lambda_t z, lambda_t = sigma_t / (alpha_t^2 S^2 + sigma_t^2)), and a linear property g(z_t, t) =
alpha_t <w, z_x> (w with zero centroid, |w| = 1). Every step is then affine in z, so the mean mu = E<w, z> follows the
sampler's exact recursion: mu_s = mu_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) (lambda_t mu_t
+ s sigma_t alpha_t (alpha_t mu_t - c)), and EDM's unguided final step gives mu_x = mu_0 (1 - sigma_0 lambda_0) / alpha_0.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusion.standins import EquivariantDenoiser, GaussianDenoiser

from molgen.batch import MoleculeLayout
from molgen.diffusion import PolynomialSchedule, sample
from molgen.diffusion.inpainting import Fragment, sample_inpainting
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.samplers import ancestral_grid
from molgen.diffusion.schedule import alpha, alpha_t_given_s, sigma, sigma2_t_given_s
from molgen.geometry.centroid import remove_centroid
from molgen.geometry.rotations import random_rotations
from molgen.property.guidance import (
    EnergyGuidance,
    EnergyTerm,
    PropertyHistograms,
    bound_rms,
    conditional_node_distribution,
    energy_gradient,
)
from molgen.property.regressor import PropertyRegressor, RegressorConfig

SCHEDULE = PolynomialSchedule(100)
N, SPREAD = 4, 1.0


def _direction() -> torch.Tensor:
    """w [N, 3]: zero centroid, unit norm."""
    w = remove_centroid(torch.arange(N * 3, dtype=torch.float64).reshape(N, 3).cos(), torch.zeros(N, dtype=torch.long), 1)
    return w / w.norm()


class LinearProperty:
    """g(z_t, t) = alpha_t <w, z_x> of each molecule of N atoms, [B, 1]."""

    def __init__(self, w: torch.Tensor) -> None:
        self.w = w

    def __call__(self, z_x, z_h, t, layout):
        alpha_t = alpha(SCHEDULE.gamma(t)).to(z_x.dtype)  # [B]
        return alpha_t.unsqueeze(1) * (z_x.reshape(-1, N * 3) @ self.w.reshape(-1, 1).to(z_x.dtype))  # [B, 1]


def _predicted_mean(scale: float, target: float, steps: int) -> float:
    """E<w, x> of the samples by the sampler's exact linear recursion (module docstring)."""
    grid = ancestral_grid(SCHEDULE.timesteps, steps)
    gamma = SCHEDULE.gamma_at(grid)  # [K + 1] float64
    mean = 0.0
    for i in range(steps):
        alpha_t, sigma_t = float(alpha(gamma[i])), float(sigma(gamma[i]))
        lam = sigma_t / (alpha_t**2 * SPREAD**2 + sigma_t**2)
        alpha_ts, sigma2_ts = float(alpha_t_given_s(gamma[i], gamma[i + 1])), float(sigma2_t_given_s(gamma[i], gamma[i + 1]))
        eps = lam * mean + scale * sigma_t * alpha_t * (alpha_t * mean - target)
        mean = mean / alpha_ts - sigma2_ts / (alpha_ts * sigma_t) * eps
    alpha_0, sigma_0 = float(alpha(gamma[-1])), float(sigma(gamma[-1]))
    return mean * (1 - sigma_0 * sigma_0 / (alpha_0**2 * SPREAD**2 + sigma_0**2)) / alpha_0


def _toy_samples(scale: float, target: float, molecules: int, steps: int) -> torch.Tensor:
    """<w, x> of each sample [B]."""
    w = _direction()
    guidance = EnergyGuidance([EnergyTerm(LinearProperty(w), torch.full((molecules,), target))], scale, SCHEDULE,
                              dtype=torch.float64)
    batch = sample(GaussianDenoiser(SCHEDULE, SPREAD), SCHEDULE, [N] * molecules, steps=steps,
                   generator=torch.Generator().manual_seed(3), modifiers=[guidance], dtype=torch.float64)
    return batch.x.reshape(molecules, N * 3) @ w.reshape(-1)  # [B]


@pytest.mark.parametrize("target", [2.0, -2.0])
def test_the_guided_mean_of_a_gaussian_toy_is_the_samplers_linear_recursion(target):
    """Tolerance: 4 standard errors of the sample mean (2,000 molecules); the predicted shift is over 20 of them."""
    projection = _toy_samples(scale=1.0, target=target, molecules=2000, steps=20)
    predicted = _predicted_mean(1.0, target, 20)
    standard_error = float(projection.std()) / math.sqrt(projection.numel())
    assert abs(predicted) > 20 * standard_error and math.copysign(1, predicted) == math.copysign(1, target)
    assert abs(float(projection.mean()) - predicted) < 4 * standard_error
    wrong_sign = _predicted_mean(-1.0, target, 20)  # a guidance pushing away from c
    assert abs(float(projection.mean()) - wrong_sign) > 20 * standard_error


def test_the_unguided_toy_mean_stays_zero():
    projection = _toy_samples(scale=0.0, target=2.0, molecules=2000, steps=20)
    assert abs(float(projection.mean())) < 4 * float(projection.std()) / math.sqrt(projection.numel())


def _state(seed: int, counts=(5, 7)) -> tuple[torch.Tensor, MoleculeLayout]:
    layout = MoleculeLayout.from_num_atoms(torch.tensor(counts))
    z = torch.randn(layout.batch.numel(), 9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.cat([remove_centroid(z[:, :3], layout.batch, layout.num_molecules), z[:, 3:]], dim=1), layout


def _guide(dtype=torch.float64) -> PropertyRegressor:
    torch.manual_seed(0)
    return PropertyRegressor(RegressorConfig(hidden=16, layers=2, rbf=4)).to(dtype).eval().requires_grad_(False)


@pytest.mark.parametrize("bound", [None, 0.05])
def test_the_guided_eps_is_equivariant_in_float64(bound):
    z, layout = _state(0)
    t = torch.full((layout.num_molecules,), 0.4, dtype=torch.float64)
    denoiser = EquivariantDenoiser()
    guidance = EnergyGuidance([EnergyTerm(_guide(), torch.tensor([1.5, -0.5]))], 3.0, SCHEDULE, dtype=torch.float64,
                              bound=bound)

    def guided(z):
        eps = torch.cat(denoiser(z[:, :3], z[:, 3:], t, layout), dim=1)  # [M, 9]
        return guidance(eps, z, t, layout), eps

    rotation = random_rotations(1, torch.Generator().manual_seed(1), torch.float64, "cpu")[0]  # [3, 3]
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    plain, unguided = guided(z)
    assert (plain - unguided).abs().max() > 1e-3  # the guidance acts
    for turn in (rotation, rotation @ reflection):
        moved, _ = guided(torch.cat([z[:, :3] @ turn.T, z[:, 3:]], dim=1))
        torch.testing.assert_close(moved[:, :3], plain[:, :3] @ turn.T, rtol=0, atol=1e-12)
        torch.testing.assert_close(moved[:, 3:], plain[:, 3:], rtol=0, atol=1e-12)


def test_the_gradient_is_the_energys_with_features_and_a_centred_position_part():
    """grad_z E against finite differences, features included (EEGSDE differentiates the whole z_t)."""
    z, layout = _state(2, counts=(4,))
    t = torch.tensor([0.3], dtype=torch.float64)
    terms = [EnergyTerm(_guide(), torch.tensor([0.7]))]
    gradient = energy_gradient(terms, z, t, layout, torch.float64)  # [M, 9]
    assert gradient[:, :3].sum(dim=0).abs().max() < 1e-12
    assert gradient[:, 3:].abs().max() > 1e-4

    def energy(z):
        return 0.5 * (terms[0].regressor(z[:, :3], z[:, 3:], t, layout).squeeze() - 0.7) ** 2

    for atom, channel in ((0, 4), (2, 8), (1, 3)):
        step = torch.zeros_like(z)
        step[atom, channel] = 1e-6
        numeric = (energy(z + step) - energy(z - step)) / 2e-6
        assert float(gradient[atom, channel]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


def test_the_position_gradient_is_projected_to_zero_centroid():
    """A property that is not translation invariant: the position part is its gradient minus the per-molecule mean."""
    z, layout = _state(3)
    t = torch.full((2,), 0.5, dtype=torch.float64)
    gradient = energy_gradient([EnergyTerm(bounded_property, torch.tensor([0.0, 0.0]))], z, t, layout, torch.float64)
    z_in = z.clone().requires_grad_(True)
    (raw,) = torch.autograd.grad((0.5 * bounded_property(z_in[:, :3], z_in[:, 3:], t, layout) ** 2).sum(), z_in)
    assert raw[:5, :3].sum(dim=0).abs().max() > 1e-3  # the raw gradient has a centroid
    torch.testing.assert_close(gradient[:, :3], remove_centroid(raw[:, :3], layout.batch, 2), rtol=0, atol=1e-12)
    torch.testing.assert_close(gradient[:, 3:], raw[:, 3:], rtol=0, atol=1e-12)


def test_a_zero_scale_returns_eps_itself_and_t_zero_is_not_guided():
    z, layout = _state(4)
    eps = torch.randn_like(z)
    terms = [EnergyTerm(_guide(), torch.tensor([1.0, 1.0]))]
    t = torch.full((2,), 0.5, dtype=torch.float64)
    assert torch.equal(EnergyGuidance(terms, 0.0, SCHEDULE, torch.float64)(eps, z, t, layout), eps)
    assert torch.equal(EnergyGuidance(terms, 5.0, SCHEDULE, torch.float64)(eps, z, torch.zeros(2), layout), eps)
    with pytest.raises(ValueError, match=">= 0"):
        EnergyGuidance(terms, -1.0, SCHEDULE)


def _rms_per_molecule(term: torch.Tensor, layout: MoleculeLayout) -> torch.Tensor:
    return torch.stack([term[layout.batch == b].pow(2).mean().sqrt() for b in range(layout.num_molecules)])  # [B]


def test_the_bound_scales_each_molecule_over_it_down_to_the_bound_and_leaves_the_others():
    z, layout = _state(6, counts=(3, 5, 4))
    term = z * torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)[layout.batch].unsqueeze(1)  # [M, 9]
    before = _rms_per_molecule(term, layout)  # [3]
    bounded = bound_rms(term, layout, 0.5)
    assert before[0] < 0.5 < before[1] < before[2]
    torch.testing.assert_close(_rms_per_molecule(bounded, layout), torch.stack([before[0], *[torch.tensor(0.5,
                               dtype=torch.float64)] * 2]), rtol=0, atol=1e-12)
    first = layout.batch == 0
    assert torch.equal(bounded[first], term[first])  # under the bound: untouched
    for b in (1, 2):  # over it: the same direction, scaled
        rows = layout.batch == b
        torch.testing.assert_close(bounded[rows] * before[b] / 0.5, term[rows], rtol=1e-12, atol=1e-12)


def test_the_bounded_guidance_term_has_the_bound_as_rms_and_a_loose_bound_changes_nothing():
    z, layout = _state(7)
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    terms = [EnergyTerm(_guide(), torch.tensor([3.0, -3.0]))]
    t = torch.full((2,), 0.5, dtype=torch.float64)
    free = EnergyGuidance(terms, 4.0, SCHEDULE, torch.float64)(eps, z, t, layout) - eps  # [M, 9]
    rms = _rms_per_molecule(free, layout)  # [2]
    tight = EnergyGuidance(terms, 4.0, SCHEDULE, torch.float64, bound=float(rms.min()) / 2)(eps, z, t, layout) - eps
    torch.testing.assert_close(_rms_per_molecule(tight, layout), rms.new_full((2,), float(rms.min()) / 2), rtol=1e-10,
                               atol=0)
    loose = EnergyGuidance(terms, 4.0, SCHEDULE, torch.float64, bound=float(rms.max()) * 2)(eps, z, t, layout) - eps
    assert torch.equal(loose, free)
    with pytest.raises(ValueError, match="bound must be > 0"):
        EnergyGuidance(terms, 1.0, SCHEDULE, bound=0.0)


def test_guidance_runs_in_float32_under_inference_mode():
    """Sampling runs under inference mode: the regressor's gradient is still taken, in float32."""
    z, layout = _state(5)
    terms = [EnergyTerm(_guide(torch.float32), torch.tensor([1.0, -1.0]))]
    with torch.inference_mode():
        z32, t = z.float(), torch.full((2,), 0.5)
        gradient = energy_gradient(terms, z32, t, layout)
    assert gradient.dtype == torch.float32 and gradient.abs().max() > 0


def bounded_property(z_x, z_h, t, layout):
    """An invariant property with a bounded gradient: sum_i tanh(|x_i|^2 / 4 + h_i . v) per molecule, [B]."""
    v = torch.linspace(-1, 1, 6, dtype=z_x.dtype)
    per_atom = torch.tanh((z_x**2).sum(dim=1) / 4 + z_h @ v)  # [M]
    return per_atom.new_zeros(layout.num_molecules).index_add_(0, layout.batch, per_atom)  # [B]


def test_fragment_atoms_stay_exact_under_guidance():
    fragment = Fragment(torch.tensor([[0.0, 0.0, 0.0], [1.2, 0.1, -0.3], [-0.4, 1.1, 0.2]], dtype=torch.float64),
                        torch.tensor([1, 3, 0]))
    counts = torch.tensor([6, 7])
    guidance = EnergyGuidance([EnergyTerm(bounded_property, torch.tensor([2.0, 2.0]))], 1.0, SCHEDULE,
                              dtype=torch.float64)

    def run(modifiers):
        return sample_inpainting(EquivariantDenoiser(), SCHEDULE, fragment, counts, steps=10, resample=1, rotate=True,
                                 generator=torch.Generator().manual_seed(0), modifiers=modifiers, dtype=torch.float64)

    guided, plain = run([guidance]), run([])
    index = torch.cat([torch.arange(3), 6 + torch.arange(3)])
    assert torch.equal(guided.x[index], torch.cat([fragment.positions, fragment.positions]))
    assert torch.equal(guided.atom_type[index], torch.cat([fragment.atom_type, fragment.atom_type]))
    assert (guided.x - plain.x).abs().max() > 1e-3  # the free atoms were guided


def test_p_n_given_c_is_the_prior_times_the_histogram_densities():
    """Histograms as EDM's DistributionProperty keeps them: per N its own range [low_N, high_N], equal bins."""
    prior = NodeCountDistribution(torch.tensor([0.0, 0.0, 1.0, 3.0, 4.0]))
    nan = float("nan")
    first = PropertyHistograms(torch.tensor([[0, 0], [0, 0], [1, 1], [2, 2], [0, 8]]),
                               torch.tensor([nan, nan, 0.0, 1.0, 2.0]), torch.tensor([nan, nan, 2.0, 5.0, 4.0]))
    second = PropertyHistograms(torch.tensor([[0, 0], [0, 0], [1, 0], [1, 1], [3, 1]]),
                                torch.tensor([nan, nan, 0.0, 0.0, 0.0]), torch.tensor([nan, nan, 1.0, 2.0, 4.0]))
    # c1 = 3.5: N=2 outside [0, 2]; N=3 second bin of [1, 5] (2 of 4, width 2); N=4 second of [2, 4] (8 of 8, width 1)
    # c2 = 0.7: N=3 first bin of [0, 2] (1 of 2, width 1); N=4 first bin of [0, 4] (3 of 4, width 2)
    expected = torch.tensor([0, 0, 0, 3 / 8 * (2 / 4 / 2) * (1 / 2 / 1), 4 / 8 * (8 / 8 / 1) * (3 / 4 / 2)],
                            dtype=torch.float64)
    got = conditional_node_distribution(prior, [(first, 3.5), (second, 0.7)])
    torch.testing.assert_close(got.probabilities, expected / expected.sum(), rtol=1e-9, atol=0)
    assert conditional_node_distribution(prior, [(first, 5.0)]).supported == [3]  # the top edge is in the last bin
    assert conditional_node_distribution(prior, [(first, 3.5)], above=3).supported == [4]
    with pytest.raises(ValueError, match="no atom count"):
        conditional_node_distribution(prior, [(first, 9.0)])


def test_the_torch_free_target_table_names_the_properties_and_units():
    from molgen.property.properties import PROPERTIES
    from molgen.property.targets import PROPERTY_UNITS, parse_target

    assert PROPERTY_UNITS == {name: prop.unit for name, prop in PROPERTIES.items()}
    assert parse_target(" gap = 6500.5") == ("gap", 6500.5)
