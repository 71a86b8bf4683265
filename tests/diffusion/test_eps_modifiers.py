"""The ε-modifier seam: every sampler and inpainting change the network's prediction by the modifiers, in order, at
every network call (steps, Heun's second evaluation, RePaint round trips, the final step).

A constant modifier eps + v on a denoiser that predicts zero shifts the sample by a known multiple of v_x: for the
probability-flow ODE samplers (Heun, DPM-Solver++(2M)) the data prediction (z_t - sigma_t v) / alpha_t is then
constant along the exact ODE path, which both solve exactly, so x moves by -sigma_ve(t = 1) v_x; for the ancestral
sampler, with the same noise draws, the shift k_t of z_t obeys k_s / alpha_s = k_t / alpha_t + sigma_ve,t -
sigma_ve,s^2 / sigma_ve,t (from z_s = z_t / alpha_{t|s} - sigma^2_{t|s} / (alpha_{t|s} sigma_t) eps_hat + noise),
and the final step adds sigma_ve,0.
"""

from __future__ import annotations

import math

import pytest
import torch

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.choices import SAMPLER_TABLE
from molgen.diffusion import PolynomialSchedule, SamplingError, sample
from molgen.diffusion.inpainting import Fragment, sample_inpainting
from molgen.geometry.centroid import remove_centroid

from .standins import MixtureDenoiser

COUNTS = [6, 6, 6]
SCHEDULE = PolynomialSchedule(200)


def _clouds() -> MoleculeBatch:
    """Two molecules of 6 atoms: the data of the Bayes-optimal (state-dependent, nonlinear) stand-in network."""
    x = 1.2 * torch.randn(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # [12, 3]
    return MoleculeBatch.from_arrays(x, torch.tensor([1, 1, 3, 0, 0, 0, 1, 2, 0, 0, 0, 4]), torch.tensor([6, 6]))


NETWORK = MixtureDenoiser(SCHEDULE, _clouds(), torch.tensor([0.3, 0.7]), continuous=True)


def pattern(layout: MoleculeLayout, dtype: torch.dtype) -> torch.Tensor:
    """A fixed v [M, 9] that depends on the layout only, its position part with zero centroid per molecule."""
    v = torch.cos(torch.arange(layout.batch.numel() * 9, dtype=dtype)).reshape(-1, 9)  # [M, 9]
    return torch.cat([remove_centroid(v[:, :3], layout.batch, layout.num_molecules), v[:, 3:]], dim=1)


def add_pattern(eps, z, t, layout):
    return eps + pattern(layout, eps.dtype)


def zero_denoiser(z_x, z_h, t, layout):
    return torch.zeros_like(z_x), torch.zeros_like(z_h)


def _sample(name: str, denoiser, **kwargs):
    return sample(denoiser, SCHEDULE, COUNTS, sampler=name, steps=6, generator=torch.Generator().manual_seed(0),
                  dtype=torch.float64, **kwargs)


def _ancestral_shift(steps: int) -> float:
    """The factor k with x(v) - x(0) = -k v_x for the ancestral sampler on the zero denoiser (module docstring)."""
    grid = torch.linspace(SCHEDULE.timesteps, 0, steps + 1, dtype=torch.float64).round().long()  # [K + 1]
    level = torch.exp(0.5 * SCHEDULE.gamma_table[grid])  # [K + 1] sigma_ve along the grid, by hand
    return float((level[:-1] - level[1:] ** 2 / level[:-1]).sum() + level[-1])


@pytest.mark.parametrize("name", list(SAMPLER_TABLE))
def test_a_constant_modifier_shifts_the_sample_as_derived(name):
    plain = _sample(name, zero_denoiser)
    shifted = _sample(name, zero_denoiser, modifiers=[add_pattern])
    v_x = pattern(plain.layout, torch.float64)[:, :3]  # [M, 3]
    factor = _ancestral_shift(6) if name == "ancestral" else math.exp(0.5 * float(SCHEDULE.gamma_table[-1]))
    torch.testing.assert_close(shifted.x - plain.x, -factor * v_x, rtol=1e-9, atol=1e-9)
    assert factor > 100  # sigma_ve(t = 1) = 316: a modifier skipped anywhere would show


@pytest.mark.parametrize("name", list(SAMPLER_TABLE))
def test_a_modifier_acts_as_a_changed_network_at_every_call(name):
    """eps + v by a modifier gives what a network predicting eps + v gives, on a state-dependent denoiser."""
    network = NETWORK

    def shifted_network(z_x, z_h, t, layout):
        eps_x, eps_h = network(z_x, z_h, t, layout)
        v = pattern(layout, z_x.dtype)  # [M, 9]
        return eps_x + v[:, :3], eps_h + v[:, 3:]

    extra = {"churn": 2.0} if SAMPLER_TABLE[name].churn else {}
    expected = _sample(name, shifted_network, **extra)
    got = _sample(name, network, modifiers=[add_pattern], **extra)
    torch.testing.assert_close(got.x, expected.x, rtol=0, atol=1e-9)
    assert torch.equal(got.atom_type, expected.atom_type)
    assert not torch.allclose(_sample(name, network, **extra).x, got.x, atol=1e-3)


def test_inpainting_applies_the_modifiers_in_steps_and_round_trips():
    network = NETWORK
    fragment = Fragment(torch.tensor([[0.0, 0.0, 0.0], [1.3, 0.2, 0.0]], dtype=torch.float64), torch.tensor([1, 2]))

    def shifted_network(z_x, z_h, t, layout):
        eps_x, eps_h = network(z_x, z_h, t, layout)
        v = pattern(layout, z_x.dtype)  # [M, 9]
        return eps_x + v[:, :3], eps_h + v[:, 3:]

    def run(denoiser, **kwargs):
        return sample_inpainting(denoiser, SCHEDULE, fragment, torch.tensor(COUNTS), steps=5, resample=2, rotate=True,
                                 generator=torch.Generator().manual_seed(1), dtype=torch.float64, **kwargs)

    got, expected = run(network, modifiers=[add_pattern]), run(shifted_network)
    torch.testing.assert_close(got.x, expected.x, rtol=0, atol=1e-9)
    assert not torch.allclose(run(network).x, got.x, atol=1e-3)


def test_modifiers_compose_in_order_and_see_the_state_and_time():
    seen = []

    def double(eps, z, t, layout):
        seen.append((z.clone(), t.clone()))
        return 2 * eps

    def network_seen(z_x, z_h, t, layout):
        seen.append((torch.cat([z_x, z_h], dim=1), t.clone()))
        return NETWORK(z_x, z_h, t, layout)

    def network_then(scale_first: bool):
        def denoiser(z_x, z_h, t, layout):
            eps_x, eps_h = NETWORK(z_x, z_h, t, layout)
            v = pattern(layout, z_x.dtype)  # [M, 9]
            if scale_first:
                return 2 * eps_x + v[:, :3], 2 * eps_h + v[:, 3:]
            return 2 * (eps_x + v[:, :3]), 2 * (eps_h + v[:, 3:])
        return denoiser

    add_then_double = _sample("dpmpp2m", network_seen, modifiers=[add_pattern, double])
    pairs = list(zip(seen[0::2], seen[1::2]))  # (network's view, the modifier's view) per call
    assert len(pairs) == 7 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    double_then_add = _sample("dpmpp2m", NETWORK, modifiers=[double, add_pattern])
    torch.testing.assert_close(add_then_double.x, _sample("dpmpp2m", network_then(False)).x, rtol=0, atol=1e-9)
    torch.testing.assert_close(double_then_add.x, _sample("dpmpp2m", network_then(True)).x, rtol=0, atol=1e-9)


def test_a_modifier_that_breaks_the_prediction_names_the_step():
    def nan_late(eps, z, t, layout):
        return eps * float("nan") if float(t[0]) < 0.5 else eps

    with pytest.raises(SamplingError, match=r"ε-modifiers returned NaN or inf at step 4 of 6 \(t = 0\.335\)"):
        _sample("ancestral", zero_denoiser, modifiers=[nan_late])
    with pytest.raises(SamplingError, match=r"shape \(18, 3\), not \(18, 9\), at step 0 of 6"):
        _sample("heun", zero_denoiser, modifiers=[lambda eps, z, t, layout: eps[:, :3]])
