"""Feature scaling, centroid-free noise, noising, and the l2 training loss."""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.diffusion import (
    PolynomialSchedule,
    batch_to_state,
    diffusion_loss,
    noise_state,
    sample_noise,
    state_to_batch,
)
from molgen.geometry.centroid import centroid

from .standins import EquivariantDenoiser


def _molecules(sizes: list[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> MoleculeBatch:
    generator = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    x = torch.randn(total, 3, generator=generator, dtype=dtype)  # [M, 3]
    types = torch.randint(0, 5, (total,), generator=generator)  # [M]
    return MoleculeBatch.from_arrays(x, types, torch.tensor(sizes))


def test_state_round_trip() -> None:
    batch = _molecules([3, 5, 4])
    x, h = batch_to_state(batch)
    assert x.shape == (12, 3) and h.shape == (12, 6)
    torch.testing.assert_close(h[:, :5].sum(1), torch.full((12,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(h[:, 5] * 10, batch.charge.double())
    decoded = state_to_batch(x, h, batch.layout)
    assert torch.equal(decoded.atom_type, batch.atom_type) and torch.equal(decoded.charge, batch.charge)
    torch.testing.assert_close(decoded.x, batch.x)


def test_noise_is_centroid_free_and_seeded() -> None:
    layout = _molecules([3, 5, 4]).layout
    eps_x, eps_h = sample_noise(layout, torch.float64, generator=torch.Generator().manual_seed(1))
    again_x, _ = sample_noise(layout, torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(eps_x, again_x) and eps_h.shape == (12, 6)
    torch.testing.assert_close(centroid(eps_x, layout.batch, 3), torch.zeros(3, 3, dtype=torch.float64))


def test_noise_state_formula() -> None:
    batch = _molecules([3, 4])
    schedule = PolynomialSchedule(100)
    x, h = batch_to_state(batch)
    eps_x, eps_h = sample_noise(batch.layout, torch.float64, generator=torch.Generator().manual_seed(2))
    gamma_t = schedule.gamma_at(torch.tensor([10, 90]))
    z_x, z_h = noise_state(x, h, gamma_t, eps_x, eps_h, batch.layout)
    alpha_t, sigma_t = schedule.alpha_table[[10, 90]], schedule.sigma_table[[10, 90]]
    torch.testing.assert_close(z_x[:3], alpha_t[0] * x[:3] + sigma_t[0] * eps_x[:3])
    torch.testing.assert_close(z_h[3:], alpha_t[1] * h[3:] + sigma_t[1] * eps_h[3:])


class _Oracle:
    """Returns the noise it was built with: the perfect denoiser of one fixed draw."""

    def __init__(self, eps_x: torch.Tensor, eps_h: torch.Tensor) -> None:
        self.eps_x, self.eps_h = eps_x, eps_h

    def __call__(self, z_x, z_h, t, layout):
        return self.eps_x.to(z_x.dtype), self.eps_h.to(z_x.dtype)


def test_true_noise_gives_zero_loss() -> None:
    batch = _molecules([3, 5, 4, 6])
    schedule = PolynomialSchedule(1000)
    noise = sample_noise(batch.layout, torch.float64, generator=torch.Generator().manual_seed(3))
    t_int = torch.tensor([0, 1, 500, 1000])
    result = diffusion_loss(_Oracle(*noise), schedule, batch, t_int=t_int, noise=noise)
    assert result.per_molecule.shape == (4,)
    # t = 0: the reconstruction term; its discrete parts are ~1e-10 for z_0 within 15 sigma_0 of the data
    assert result.per_molecule.abs().max() < 1e-8


def test_loss_independent_of_batching() -> None:
    sizes = [3, 7, 5]
    batch = _molecules(sizes, dtype=torch.float32)
    schedule = PolynomialSchedule(1000)
    denoiser = EquivariantDenoiser(dtype=torch.float32)
    noise = sample_noise(batch.layout, torch.float32, generator=torch.Generator().manual_seed(4))
    t_int = torch.tensor([0, 17, 640])
    together = diffusion_loss(denoiser, schedule, batch, t_int=t_int, noise=noise)
    ptr = batch.ptr.tolist()
    for i, size in enumerate(sizes):
        single = MoleculeBatch.from_arrays(batch.x[ptr[i] : ptr[i + 1]], batch.atom_type[ptr[i] : ptr[i + 1]], torch.tensor([size]))
        part = (noise[0][ptr[i] : ptr[i + 1]], noise[1][ptr[i] : ptr[i + 1]])
        alone = diffusion_loss(denoiser, schedule, single, t_int=t_int[i : i + 1], noise=part)
        torch.testing.assert_close(alone.per_molecule[0], together.per_molecule[i])
    torch.testing.assert_close(together.loss, together.per_molecule.mean())


def test_padded_normalisation_and_gradient() -> None:
    batch = _molecules([3, 7], dtype=torch.float32)
    schedule = PolynomialSchedule(1000)
    denoiser = EquivariantDenoiser(dtype=torch.float32)
    generator_state = torch.Generator().manual_seed(5)
    noise = sample_noise(batch.layout, torch.float32, generator=generator_state)
    t_int = torch.tensor([300, 301])
    own = diffusion_loss(denoiser, schedule, batch, t_int=t_int, noise=noise)
    padded = diffusion_loss(denoiser, schedule, batch, t_int=t_int, noise=noise, normalization="padded")
    torch.testing.assert_close(padded.per_molecule, own.per_molecule * torch.tensor([3 / 7, 1.0]))
    padded.loss.backward()
    assert denoiser.weight.grad is not None and torch.isfinite(denoiser.weight.grad).all()
    with pytest.raises(ValueError, match="normalization"):
        diffusion_loss(denoiser, schedule, batch, normalization="atoms")  # type: ignore[arg-type]


def test_loss_draws_from_generator() -> None:
    batch = _molecules([3, 4, 5], dtype=torch.float32)
    schedule = PolynomialSchedule(1000)
    denoiser = EquivariantDenoiser(dtype=torch.float32)
    first = diffusion_loss(denoiser, schedule, batch, generator=torch.Generator().manual_seed(6))
    second = diffusion_loss(denoiser, schedule, batch, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first.per_molecule, second.per_molecule) and torch.equal(first.t_int, second.t_int)
    assert first.t_int.min() >= 0 and first.t_int.max() <= 1000
