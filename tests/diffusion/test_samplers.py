"""Samplers on data with known answers: a mixture of two point clouds (exact denoiser) and Gaussian data (exact ODE)."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.choices import DEFAULT_STEPS, SAMPLER_TABLE
from molgen.diffusion import (
    EpsModel,
    NodeCountDistribution,
    PolynomialSchedule,
    SamplerState,
    SamplingError,
    StepInfo,
    ancestral_grid,
    batch_to_state,
    chain_hooks,
    initial_state,
    karras_grid,
    karras_sigmas,
    sample,
    sample_heun,
    snap_to_table,
)
from molgen.geometry.centroid import centroid

from .standins import GaussianDenoiser, MixtureDenoiser

NUM_ATOMS = 6
WEIGHTS = torch.tensor([0.3, 0.7])
TYPES = torch.tensor([1, 1, 3, 0, 0, 0, 1, 2, 0, 0, 0, 4])  # C C O H H H | C N H H H F
NUM_SAMPLES = 200


@pytest.fixture(scope="module")
def schedule() -> PolynomialSchedule:
    return PolynomialSchedule(1000)


@pytest.fixture(scope="module")
def clouds() -> MoleculeBatch:
    generator = torch.Generator().manual_seed(1)
    x = 1.2 * torch.randn(2 * NUM_ATOMS, 3, generator=generator, dtype=torch.float64)  # [2 N, 3]
    return MoleculeBatch.from_arrays(x, TYPES, torch.tensor([NUM_ATOMS, NUM_ATOMS]))


@pytest.fixture(scope="module")
def ancestral_samples(schedule: PolynomialSchedule, clouds: MoleculeBatch) -> MoleculeBatch:
    """EDM's 1000-step ancestral sampler on the mixture (shared by two tests: it is the slowest run)."""
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS)
    return sample(denoiser, schedule, [NUM_ATOMS] * NUM_SAMPLES, generator=torch.Generator().manual_seed(0),
                  steps=schedule.timesteps)


def _assign(samples: MoleculeBatch, clouds: MoleculeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSD of each sample to its nearest cloud (fixed atom order, no alignment) and that cloud's index, [B] each."""
    x = samples.x.double().reshape(-1, 1, NUM_ATOMS, 3)  # [B, 1, N, 3]
    rmsd = ((x - clouds.x.reshape(1, 2, NUM_ATOMS, 3)) ** 2).sum(-1).mean(-1).sqrt()  # [B, 2]
    return rmsd.min(dim=1)


SAMPLERS = {
    "ancestral-1000": {"sampler": "ancestral", "steps": 1000},
    "ancestral-100": {"sampler": "ancestral", "steps": 100},
    "ancestral-50": {"sampler": "ancestral", "steps": 50},
    "heun-10": {"sampler": "heun", "steps": 10},
    "heun-10-nearest": {"sampler": "heun", "steps": 10},
    "heun-20-churn": {"sampler": "heun", "steps": 20, "churn": 10.0},
    "dpmpp2m-10": {"sampler": "dpmpp2m", "steps": 10},
}


def _sample(denoiser, schedule: PolynomialSchedule, name: str) -> MoleculeBatch:
    """The mixture sampled by the named case from seed 0 (heun-10-nearest: Heun on the Karras grid snapped to the
    table's T + 1 steps, so the network sees only times it was trained at)."""
    generator = torch.Generator().manual_seed(0)
    if name != "heun-10-nearest":
        return sample(denoiser, schedule, [NUM_ATOMS] * NUM_SAMPLES, generator=generator, **SAMPLERS[name])
    start = initial_state(MoleculeLayout.from_num_atoms(torch.full((NUM_SAMPLES,), NUM_ATOMS)), generator)
    return sample_heun(EpsModel(denoiser, schedule), start, snap_to_table(schedule, karras_grid(schedule, 10)), generator)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_recovers_mixture(
    name: str, schedule: PolynomialSchedule, clouds: MoleculeBatch, ancestral_samples: MoleculeBatch
) -> None:
    """Every sampler returns the two clouds (positions, types, charges) in proportions within binomial error."""
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS, continuous=not name.startswith("ancestral"))
    samples = ancestral_samples if name == "ancestral-1000" else _sample(denoiser, schedule, name)
    rmsd, component = _assign(samples, clouds)
    assert float(rmsd.max()) < 0.05
    types = samples.atom_type.reshape(-1, NUM_ATOMS)  # [B, N]
    assert torch.equal(types, TYPES.reshape(2, NUM_ATOMS)[component])
    assert torch.equal(samples.charge.reshape(-1, NUM_ATOMS), clouds.charge.reshape(2, NUM_ATOMS)[component])
    fraction = float(component.double().mean())
    assert abs(fraction - 0.7) < 4 * math.sqrt(0.7 * 0.3 / NUM_SAMPLES), fraction
    torch.testing.assert_close(centroid(samples.x, samples.batch, NUM_SAMPLES), torch.zeros(NUM_SAMPLES, 3), rtol=0, atol=1e-5)


def test_few_step_heun_agrees_with_fine_solutions(
    schedule: PolynomialSchedule, clouds: MoleculeBatch, ancestral_samples: MoleculeBatch
) -> None:
    """The deterministic 10-step Heun ODE solution picks the same cloud as a 100-step one from the same z_T, and the
    proportions agree with 1000-step ancestral sampling."""
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS, continuous=True)
    runs = {"ancestral": _assign(ancestral_samples, clouds)[1]}
    for name, steps in {"heun-10": 10, "heun-100": 100}.items():
        samples = sample(denoiser, schedule, [NUM_ATOMS] * NUM_SAMPLES, generator=torch.Generator().manual_seed(3),
                         sampler="heun", steps=steps)
        runs[name] = _assign(samples, clouds)[1]
    assert float((runs["heun-10"] == runs["heun-100"]).double().mean()) >= 0.95
    difference = float(runs["heun-10"].double().mean() - runs["ancestral"].double().mean())
    assert abs(difference) < 4 * math.sqrt(2 * 0.7 * 0.3 / NUM_SAMPLES)


def _gaussian_ode_error(schedule: PolynomialSchedule, sigmas: torch.Tensor, continuous: bool) -> float:
    """RMS error (Angstrom per atom) of sample_heun's state at the last sigma against the exact probability-flow ODE
    solution for positions ~ N(0, s^2): x_ve(sigma) = x_ve(sigma_max) sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2))."""
    scale = 1.5
    layout = MoleculeLayout.from_num_atoms(torch.full((32,), 8))
    start = initial_state(layout, torch.Generator().manual_seed(0), torch.float64)
    denoiser = GaussianDenoiser(schedule, scale)
    if continuous:
        denoiser = _ContinuousGaussian(schedule, scale)
    last = {}
    sample_heun(EpsModel(denoiser, schedule), start, sigmas,
                callback=lambda info: last.update(z=info.z_x, sigma=info.sigma_ve))
    x_end = last["z"] * math.sqrt(1 + last["sigma"] ** 2)  # [M, 3]
    sigma_max = float(sigmas[0])
    exact = start.z_x * math.sqrt(1 + sigma_max**2) * math.sqrt((scale**2 + last["sigma"] ** 2) / (scale**2 + sigma_max**2))
    return float(((x_end - exact) ** 2).sum(1).mean().sqrt())


class _ContinuousGaussian(GaussianDenoiser):
    """The exact Gaussian denoiser at the interpolated gamma of t (a network that is smooth in t)."""

    def __call__(self, z_x, z_h, t, layout):
        gamma = self.schedule.gamma_continuous(t)[layout.batch].unsqueeze(1)  # [M, 1]
        alpha2, sigma2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        return (sigma2.sqrt() * z_x / (alpha2 * self.scale**2 + sigma2)).to(z_x.dtype), torch.zeros_like(z_h)


def test_heun_converges_and_time_interpolation_cost(schedule: PolynomialSchedule) -> None:
    """Heun converges at second order on the exact Gaussian ODE (errors ~0.50, 0.11, 0.026 A at 10, 20, 40 steps), and
    mapping sigma to t by interpolation costs little against snapping the grid to the nearest table steps: at 200
    steps, with a network that knows only the T + 1 grid times, 1.04e-3 (interpolated t) vs 1.03e-3 (snapped grid)
    vs 1.00e-3 for a network smooth in t, all far below the discretisation error of 10-50 steps."""
    low, high = (math.exp(0.5 * float(g)) for g in schedule.gamma_table[[0, -1]])
    errors = [_gaussian_ode_error(schedule, karras_sigmas(low, high, steps), continuous=False) for steps in (10, 20, 40)]
    assert errors[0] > 3.5 * errors[1] > 3.5 * 3.5 * errors[2]
    sigmas = karras_sigmas(low, high, 200)
    interpolated = _gaussian_ode_error(schedule, sigmas, continuous=False)
    snapped = _gaussian_ode_error(schedule, snap_to_table(schedule, sigmas), continuous=False)
    smooth = _gaussian_ode_error(schedule, sigmas, continuous=True)
    assert max(interpolated, snapped, smooth) < 1.5e-3
    assert interpolated < 1.2 * smooth and snapped < 1.2 * smooth


@pytest.mark.parametrize("kwargs", [{"sampler": "ancestral", "steps": 30}, {"sampler": "heun", "steps": 6, "churn": 5.0}])
def test_seeded_determinism_and_callback(kwargs: dict, schedule: PolynomialSchedule, clouds: MoleculeBatch) -> None:
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS)
    histogram = NodeCountDistribution(torch.tensor([0, 0, 0, 0, 0, 0, 1.0]))
    seen = []
    first = sample(denoiser, schedule, node_distribution=histogram, num_molecules=5,
                   generator=torch.Generator().manual_seed(4), callback=seen.append, **kwargs)
    second = sample(denoiser, schedule, node_distribution=histogram, num_molecules=5,
                    generator=torch.Generator().manual_seed(4), **kwargs)
    other = sample(denoiser, schedule, node_distribution=histogram, num_molecules=5,
                   generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(first.x, second.x) and torch.equal(first.atom_type, second.atom_type)
    assert not torch.equal(first.x, other.x)
    steps = kwargs["steps"]
    assert len(seen) == steps and [info.step for info in seen] == list(range(steps))
    assert all(info.num_steps == steps for info in seen)
    assert [info.t for info in seen] == sorted((info.t for info in seen), reverse=True) and seen[-1].t == pytest.approx(0)
    assert seen[0].z_x.shape == (5 * NUM_ATOMS, 3) and seen[0].z_h.shape == (5 * NUM_ATOMS, 6)
    assert seen[-1].sigma_ve == pytest.approx(math.exp(0.5 * float(schedule.gamma_table[0])))


def test_grids() -> None:
    grid = ancestral_grid(1000, 50)
    assert grid[0] == 1000 and grid[-1] == 0 and grid.numel() == 51 and (grid.diff() < 0).all()
    assert torch.equal(ancestral_grid(10, 10), torch.arange(10, -1, -1))
    with pytest.raises(ValueError, match="steps"):
        ancestral_grid(10, 11)
    sigmas = karras_sigmas(0.002, 80.0, 8)
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-1]) == pytest.approx(0.002)
    ramp = sigmas ** (1 / 7)
    torch.testing.assert_close(ramp.diff(), ramp.diff()[:1].expand(8))


def test_nan_output_names_the_step(schedule: PolynomialSchedule, clouds: MoleculeBatch) -> None:
    good = MixtureDenoiser(schedule, clouds, WEIGHTS)

    def breaks_late(z_x, z_h, t, layout):
        eps_x, eps_h = good(z_x, z_h, t, layout)
        return (eps_x * float("nan"), eps_h) if float(t[0]) < 0.5 else (eps_x, eps_h)

    with pytest.raises(SamplingError, match=r"step 6 of 10 \(t = 0\.4\)"):
        sample(breaks_late, schedule, [NUM_ATOMS], steps=10, generator=torch.Generator().manual_seed(0))
    with pytest.raises(SamplingError, match="step 0 of 3"):
        sample(lambda z_x, z_h, t, layout: (z_x * float("inf"), z_h), schedule, [NUM_ATOMS], sampler="heun", steps=3)


def test_atom_counts_validation(schedule: PolynomialSchedule, clouds: MoleculeBatch) -> None:
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS)
    histogram = NodeCountDistribution(torch.tensor([0, 0, 0, 0, 0, 0, 1.0]))
    with pytest.raises(ValueError, match=r"\[5\].*supported counts: 6"):
        sample(denoiser, schedule, [6, 5], node_distribution=histogram, steps=2)
    with pytest.raises(ValueError, match="num_atoms"):
        sample(denoiser, schedule, steps=2)
    with pytest.raises(ValueError, match="sampler 'ddim'; choose one of ancestral, heun, dpmpp2m"):
        sample(denoiser, schedule, [6], sampler="ddim")
    with pytest.raises(ValueError, match="churn applies to the heun sampler only, not dpmpp2m"):
        sample(denoiser, schedule, [6], sampler="dpmpp2m", churn=1.0)


@pytest.mark.parametrize("sampler", list(SAMPLER_TABLE))
def test_default_steps_come_from_the_one_table(schedule: PolynomialSchedule, clouds: MoleculeBatch,
                                               sampler: str) -> None:
    """Without `steps`, each sampler takes DEFAULT_STEPS[sampler] steps: ancestral and DPM-Solver++(2M) steps + 1
    network calls, Heun 2 steps + 1, as the table says."""
    denoiser, calls = MixtureDenoiser(schedule, clouds, WEIGHTS, continuous=sampler != "ancestral"), []

    def counting(z_x, z_h, t, layout):
        calls.append(float(t[0]))
        return denoiser(z_x, z_h, t, layout)

    sample(counting, schedule, [NUM_ATOMS], sampler=sampler, generator=torch.Generator().manual_seed(0))
    steps = DEFAULT_STEPS[sampler]
    assert len(calls) == (2 * steps + 1 if sampler == "heun" else steps + 1)
    assert len(calls) == SAMPLER_TABLE[sampler].network_calls(steps)


@pytest.mark.parametrize("sampler", list(SAMPLER_TABLE))
def test_a_step_hook_replaces_the_state(schedule: PolynomialSchedule, clouds: MoleculeBatch, sampler: str) -> None:
    """A hook's returned state is the one the sampler continues from: pinning the features to the scaled one-hot
    of cloud 0's types at every step makes every sample take cloud 0's types; a hook returning None (chained
    after it) sees the pinned state and changes nothing."""
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS, continuous=sampler != "ancestral")
    target = batch_to_state(clouds)[1][:NUM_ATOMS]  # [N, 6] cloud 0's scaled features
    seen = []

    def pin(info: StepInfo) -> SamplerState:
        alpha_s = 1 / math.sqrt(1 + info.sigma_ve**2)
        z_h = alpha_s * target.to(info.z_h.dtype).repeat(info.layout.num_molecules, 1)  # [M, 6]
        return SamplerState(info.z_x, z_h, info.layout)

    def watch(info: StepInfo) -> None:
        seen.append(bool(torch.allclose(info.z_h[:NUM_ATOMS] * math.sqrt(1 + info.sigma_ve**2),
                                        target.to(info.z_h.dtype), atol=1e-5)))

    samples = sample(denoiser, schedule, [NUM_ATOMS] * 8, sampler=sampler, steps=10,
                     generator=torch.Generator().manual_seed(0), callback=chain_hooks(pin, watch))
    assert all(seen) and len(seen) == 10
    assert torch.equal(samples.atom_type.reshape(8, NUM_ATOMS), TYPES[:NUM_ATOMS].expand(8, NUM_ATOMS))
