"""Stand-in denoisers with known answers: Bayes-optimal ones for Gaussian and two-point-mass data, an equivariant toy."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion import NoiseSchedule, batch_to_state
from molgen.geometry.centroid import remove_centroid


def _gamma(schedule: NoiseSchedule, t: Tensor, continuous: bool) -> Tensor:
    """gamma at t [B]: the table's nearest step (a network trained on the grid) or the interpolated table."""
    return schedule.gamma_continuous(t) if continuous else schedule.gamma(t)  # [B]


class GaussianDenoiser:
    """Bayes-optimal eps for positions ~ N(0, s^2) on the zero-centroid subspace: sigma_t z / (alpha_t^2 s^2 + sigma_t^2).

    The feature part predicts zero (the tests read the position part of the bound only).
    """

    def __init__(self, schedule: NoiseSchedule, scale: float) -> None:
        self.schedule, self.scale = schedule, scale

    def __call__(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        gamma = self.schedule.gamma(t)[layout.batch].unsqueeze(1)  # [M, 1]
        alpha2, sigma2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)  # [M, 1], [M, 1]
        eps_x = sigma2.sqrt() * z_x.double() / (alpha2 * self.scale**2 + sigma2)  # [M, 3]
        return eps_x.to(z_x.dtype), torch.zeros_like(z_h)


class MixtureDenoiser:
    """Bayes-optimal eps for data = a mixture of K point masses (molecules with N atoms, all 9 channels fixed).

    E[xh | z_t] = sum_k w_k xh_k with w ∝ pi_k exp(-||z_t - alpha_t xh_k||^2 / (2 sigma_t^2)); eps = (z_t - alpha_t E) / sigma_t.
    """

    def __init__(self, schedule: NoiseSchedule, molecules: MoleculeBatch, weights: Tensor, continuous: bool = False) -> None:
        x, h = batch_to_state(molecules, torch.float64)  # [K * N, 3], [K * N, 6]
        self.num_atoms = int(molecules.num_atoms[0])
        self.data = torch.cat([x, h], dim=1).reshape(molecules.num_molecules, self.num_atoms, 9)  # [K, N, 9]
        self.log_weights = torch.log(weights.double() / weights.sum())  # [K]
        self.schedule, self.continuous = schedule, continuous

    def __call__(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        gamma = _gamma(self.schedule, t, self.continuous).reshape(-1, 1, 1)  # [B, 1, 1]
        alpha, sigma = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()  # [B, 1, 1]
        z = torch.cat([z_x, z_h], dim=1).double().reshape(-1, self.num_atoms, 9)  # [B, N, 9]
        distance2 = ((z.unsqueeze(1) - alpha.unsqueeze(1) * self.data) ** 2).sum(dim=(2, 3))  # [B, K]
        posterior = torch.softmax(self.log_weights - distance2 / (2 * sigma.reshape(-1, 1) ** 2), dim=1)  # [B, K]
        mean = torch.einsum("bk,knc->bnc", posterior, self.data)  # [B, N, 9]
        eps = ((z - alpha * mean) / sigma).reshape(-1, 9).to(z_x.dtype)  # [M, 9]
        return eps[:, :3], eps[:, 3:]


class EquivariantDenoiser(nn.Module):
    """A toy E(3)-equivariant denoiser: eps_x_i = sum_j f(d_ij^2, h_i . h_j, t) (x_i - x_j), eps_h from invariants."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(6, generator=generator, dtype=dtype))  # [6]
        self.mix = nn.Parameter(torch.randn(6, 6, generator=generator, dtype=dtype) / 3)  # [6, 6]

    def forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        w = self.weight
        same = (layout.batch.unsqueeze(0) == layout.batch.unsqueeze(1)).to(z_x.dtype)  # [M, M]
        difference = z_x.unsqueeze(1) - z_x.unsqueeze(0)  # [M, M, 3]
        distance2 = (difference**2).sum(dim=2)  # [M, M]
        t_atom = t[layout.batch].unsqueeze(1)  # [M, 1]
        f = torch.tanh(w[0] * distance2 + w[1] * (z_h @ z_h.T) + w[2] * t_atom + w[3]) * same  # [M, M]
        eps_x = remove_centroid((f.unsqueeze(2) * difference).sum(dim=1), layout.batch, layout.num_molecules)  # [M, 3]
        invariant = (f * distance2).sum(dim=1, keepdim=True)  # [M, 1]
        eps_h = torch.tanh(z_h @ self.mix + w[4] * invariant + w[5] * t_atom)  # [M, 6]
        return eps_x, eps_h
