"""The variational bound on -log p(x, h, N) in nats per molecule, as EDM reports it (Hoogeboom et al. 2022).

-log p(x, h, N) <= kl_prior + diffusion + constant_x + L0 - log p(N), each term per molecule:
  kl_prior   KL(q(z_T | x, h) || N(0, I)), positions on the (N - 1) * 3 dimensional zero-centroid subspace;
  diffusion  T * 1/2 (SNR(s) / SNR(t) - 1) ||eps - eps_hat||^2, t ~ U{1..T}, s = t - 1 (one-sample estimate);
  constant_x -(N - 1) * 3 * (-1/2 gamma_0 - 1/2 log 2 pi), the normalisation of p(x | z_0);
  L0         -log p(x, h | z_0) without that constant, on its own draw z_0 and network call at t = 0;
  -log p(N)  from the node-count histogram.
Everything is computed in float64; the denoiser may run in any precision (its output is cast to float64).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.errors import LikelihoodError
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.process import (
    Denoiser,
    batch_to_state,
    call_denoiser,
    neg_log_p_h_given_z0,
    noise_state,
    sample_noise,
    sum_per_molecule,
)
from molgen.diffusion.schedule import NoiseSchedule, sigma
from molgen.elements import NUM_FEATURES

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class NLLTerms:
    """The terms of the bound, each float64 [B] in nats per molecule, and the step t of the diffusion term [B]."""

    kl_prior_x: Tensor
    kl_prior_h: Tensor
    diffusion_x: Tensor
    diffusion_h: Tensor
    constant_x: Tensor
    l0_x: Tensor
    l0_charge: Tensor
    l0_one_hot: Tensor
    neg_log_p_num_atoms: Tensor
    t_int: Tensor

    @property
    def position_part(self) -> Tensor:
        """The bound on -log p(x) of the positions alone: kl_prior_x + diffusion_x + constant_x + l0_x, [B]."""
        return self.kl_prior_x + self.diffusion_x + self.constant_x + self.l0_x

    @property
    def total(self) -> Tensor:
        """The NLL bound EDM reports: the sum of all terms, [B]."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "t_int")


def subspace_dimensionality(num_atoms: Tensor) -> Tensor:
    """(N - 1) * 3, the dimension of the zero-centroid position subspace, [B]."""
    return (num_atoms - 1) * 3


def kl_prior(x: Tensor, h: Tensor, gamma_T: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
    """KL(N(alpha_T [x, h], sigma_T^2 I) || N(0, I)) per molecule, positions on the (N - 1) * 3 subspace.

    Shapes: x [M, 3] (zero centroid), h [M, 6], gamma_T scalar -> kl_x [B], kl_h [B].
    """
    gamma_T = gamma_T.to(torch.float64)
    sigma2_T, alpha2_T = torch.sigmoid(gamma_T), torch.sigmoid(-gamma_T)
    log_sigma_T = 0.5 * torch.nn.functional.logsigmoid(gamma_T)
    per_dimension = -log_sigma_T + 0.5 * sigma2_T - 0.5  # KL of one coordinate at zero data
    num_molecules = layout.num_molecules
    d_x = subspace_dimensionality(layout.num_atoms).to(torch.float64)  # [B]
    d_h = NUM_FEATURES * layout.num_atoms.to(torch.float64)  # [B]
    x2 = sum_per_molecule(x.to(torch.float64) ** 2, layout.batch, num_molecules)  # [B]
    h2 = sum_per_molecule(h.to(torch.float64) ** 2, layout.batch, num_molecules)  # [B]
    return d_x * per_dimension + 0.5 * alpha2_T * x2, d_h * per_dimension + 0.5 * alpha2_T * h2  # [B], [B]


def denoiser_dtype(denoiser: Denoiser) -> torch.dtype:
    """The dtype to feed a denoiser: that of its first floating parameter or buffer, else float64."""
    if isinstance(denoiser, nn.Module):
        for tensor in (*denoiser.parameters(), *denoiser.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.float64


def variational_nll(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batch: MoleculeBatch,
    node_distribution: NodeCountDistribution | None = None,
    generator: torch.Generator | None = None,
    t_int: Tensor | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
    noise_0: tuple[Tensor, Tensor] | None = None,
    input_dtype: torch.dtype | None = None,
) -> NLLTerms:
    """One-sample estimate of EDM's bound on -log p(x, h, N) for each molecule of a batch.

    Random draws, in this order from the generator: t ~ U{1..T} [B], eps [M, 9] for z_t, eps_0 [M, 9] for z_0.
    Args:
        node_distribution: p(N); without it the -log p(N) term is zero.
        t_int, noise, noise_0: optional fixed steps [B] and noises (eps_x [M, 3], eps_h [M, 6]) instead of draws.
        input_dtype: dtype fed to the denoiser; default: its parameters' dtype (float64 for a plain callable).
    Runs without gradients; put a module in eval mode first (`evaluate_nll` does).
    """
    layout, device = batch.layout, batch.x.device
    num_molecules, timesteps = batch.num_molecules, schedule.timesteps
    input_dtype = input_dtype or denoiser_dtype(denoiser)
    if t_int is None:
        t_int = torch.randint(1, timesteps + 1, (num_molecules,), device=device, generator=generator)  # [B]
    eps_x, eps_h = _noise(noise, layout, generator)  # [M, 3], [M, 6]
    eps0_x, eps0_h = _noise(noise_0, layout, generator)  # [M, 3], [M, 6]
    x, h = batch_to_state(batch, torch.float64)  # [M, 3], [M, 6]
    gamma_0, gamma_T = schedule.gamma_table[0], schedule.gamma_table[-1]  # [], []
    kl_prior_x, kl_prior_h = kl_prior(x, h, gamma_T, layout)  # [B], [B]

    diffusion_x, diffusion_h = _diffusion_term(denoiser, schedule, (x, h), t_int, (eps_x, eps_h), layout,
                                               input_dtype)  # [B], [B]
    # -log p(x | z_0) normalisation: d (log sigma_x + 1/2 log 2 pi), sigma_x = sigma_0 / alpha_0 = exp(gamma_0 / 2).
    d_x = subspace_dimensionality(batch.num_atoms).to(torch.float64)  # [B]
    constant_x = d_x * (0.5 * gamma_0 + 0.5 * LOG_2PI)  # [B]
    l0_x, l0_charge, l0_one_hot = _l0_terms(denoiser, schedule, batch, (x, h), (eps0_x, eps0_h), input_dtype)  # [B]
    if node_distribution is None:
        neg_log_p_num_atoms = torch.zeros(num_molecules, dtype=torch.float64, device=device)  # [B]
    else:
        neg_log_p_num_atoms = -node_distribution.log_prob(batch.num_atoms).to(device)  # [B]
    return NLLTerms(
        kl_prior_x=kl_prior_x, kl_prior_h=kl_prior_h, diffusion_x=diffusion_x, diffusion_h=diffusion_h,
        constant_x=constant_x, l0_x=l0_x, l0_charge=l0_charge, l0_one_hot=l0_one_hot,
        neg_log_p_num_atoms=neg_log_p_num_atoms, t_int=t_int,
    )


def diffusion_terms_at(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batch: MoleculeBatch,
    t_int: Tensor,
    noise: tuple[Tensor, Tensor],
    input_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """The bound's diffusion term T * L_t at given steps t_int [B] (1..T) and noise (eps_x [M, 3], eps_h [M, 6]),
    split into positions and features, float64 [B] each: `variational_nll`'s diffusion_x and diffusion_h without
    its other terms (one network call). Runs without gradients; put a module in eval mode first."""
    x, h = batch_to_state(batch, torch.float64)  # [M, 3], [M, 6]
    eps = (noise[0].to(torch.float64), noise[1].to(torch.float64))  # [M, 3], [M, 6]
    return _diffusion_term(denoiser, schedule, (x, h), t_int, eps, batch.layout,
                           input_dtype or denoiser_dtype(denoiser))  # [B], [B]


def _diffusion_term(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    state: tuple[Tensor, Tensor],
    t_int: Tensor,
    noise: tuple[Tensor, Tensor],
    layout: MoleculeLayout,
    input_dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """The diffusion term at t ~ U{1..T}: T * 1/2 * (exp(gamma_t - gamma_s) - 1) * ||eps - eps_hat||^2, for the
    positions and the features, [B] each. state: (x [M, 3], h [M, 6]); noise: (eps_x [M, 3], eps_h [M, 6])."""
    (x, h), (eps_x, eps_h), num_molecules = state, noise, layout.num_molecules
    gamma_t, gamma_s = schedule.gamma_at(t_int), schedule.gamma_at(t_int - 1)  # [B], [B]
    z_x, z_h = noise_state(x, h, gamma_t, eps_x, eps_h, layout)  # [M, 3], [M, 6]
    with torch.no_grad():
        t = t_int.double() / schedule.timesteps  # [B]
        eps_hat_x, eps_hat_h = call_denoiser(denoiser, z_x, z_h, t, layout, input_dtype)  # [M, 3], [M, 6]
    _check_finite(eps_hat_x, eps_hat_h, "the network output at t ~ U{1..T}")
    weight = schedule.timesteps * 0.5 * torch.expm1(gamma_t - gamma_s)  # [B]
    diffusion_x = weight * sum_per_molecule((eps_x - eps_hat_x) ** 2, layout.batch, num_molecules)  # [B]
    diffusion_h = weight * sum_per_molecule((eps_h - eps_hat_h) ** 2, layout.batch, num_molecules)  # [B]
    return diffusion_x, diffusion_h


def _l0_terms(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batch: MoleculeBatch,
    state: tuple[Tensor, Tensor],
    noise_0: tuple[Tensor, Tensor],
    input_dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    """L0 = -log p(x, h | z_0) on a separate z_0 = alpha_0 [x, h] + sigma_0 eps_0 with its own network call at
    t = 0: the position part 1/2 ||eps_0 - eps_hat_0||^2, the charge and the one-hot parts, [B] each."""
    (x, h), (eps0_x, eps0_h), layout = state, noise_0, batch.layout
    num_molecules, gamma_0 = layout.num_molecules, schedule.gamma_table[0]
    t_zero = torch.zeros(num_molecules, dtype=torch.float64, device=x.device)  # [B]
    z0_x, z0_h = noise_state(x, h, gamma_0.expand(num_molecules), eps0_x, eps0_h, layout)  # [M, 3], [M, 6]
    with torch.no_grad():
        eps_hat0_x, eps_hat0_h = call_denoiser(denoiser, z0_x, z0_h, t_zero, layout, input_dtype)  # [M, 3], [M, 6]
    _check_finite(eps_hat0_x, eps_hat0_h, "the network output at t = 0")
    l0_x = 0.5 * sum_per_molecule((eps0_x - eps_hat0_x) ** 2, layout.batch, num_molecules)  # [B]
    l0_charge, l0_one_hot = neg_log_p_h_given_z0(z0_h, batch, sigma(gamma_0))  # [B], [B]
    return l0_x, l0_charge, l0_one_hot


def _noise(
    noise: tuple[Tensor, Tensor] | None, layout: MoleculeLayout, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """The given noise pair (eps_x [M, 3], eps_h [M, 6]) in float64, or a fresh draw."""
    if noise is None:
        return sample_noise(layout, torch.float64, layout.batch.device, generator)
    return noise[0].to(torch.float64), noise[1].to(torch.float64)


def _check_finite(eps_x: Tensor, eps_h: Tensor, where: str) -> None:
    """Raise LikelihoodError if a network output holds NaN or inf."""
    if not (torch.isfinite(eps_x).all() and torch.isfinite(eps_h).all()):
        raise LikelihoodError(f"non-finite values (NaN or inf) in {where}")


class NLLEstimate(NamedTuple):
    """The test-set NLL: mean over molecules, its standard error, and the number of molecules."""

    mean: float
    standard_error: float
    num_molecules: int


def evaluate_nll(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batches: Iterable[MoleculeBatch],
    node_distribution: NodeCountDistribution,
    passes: int = 1,
    generator: torch.Generator | int | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> NLLEstimate:
    """EDM's evaluation NLL in nats per molecule over a data set (EDM reports the test NLL over 5 passes).

    Each molecule's NLL is the mean of `passes` independent one-sample estimates of the bound (fresh t and noise);
    the result is the mean over molecules with the standard error std(per-molecule NLL, ddof=1) / sqrt(n), which
    includes the estimator's noise as well as the spread between molecules. `batches` is iterated once (all passes
    of a batch run back to back), so a one-shot iterator works. A module denoiser runs in eval mode and is restored.
    Args:
        generator: a torch.Generator, or an int seed for a new one on the batches' device.
        device: move every batch (and the schedule's tables) here first; default: leave them where they are.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    was_training = isinstance(denoiser, nn.Module) and denoiser.training
    if was_training:
        denoiser.eval()
    try:
        per_molecule = nll_per_molecule(
            denoiser, schedule, batches, node_distribution, passes, generator, progress, device
        )  # [n]
    finally:
        if was_training:
            denoiser.train()
    if per_molecule.numel() == 0:
        raise ValueError("evaluate_nll got no molecules")
    count = per_molecule.numel()
    standard_error = float(per_molecule.std() / math.sqrt(count)) if count > 1 else float("nan")
    return NLLEstimate(mean=float(per_molecule.mean()), standard_error=standard_error, num_molecules=count)


def nll_per_molecule(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batches: Iterable[MoleculeBatch],
    node_distribution: NodeCountDistribution,
    passes: int,
    generator: torch.Generator | int | None,
    progress: bool,
    device: torch.device | str | None,
) -> Tensor:
    """Per-molecule NLL averaged over passes, float64 [number of molecules] on the CPU, in the order of the batches
    (`evaluate_nll` summarises it; comparing two models molecule by molecule needs it whole). A module denoiser
    must be in eval mode."""
    total = len(batches) if hasattr(batches, "__len__") else None
    bar = tqdm(batches, total=total, desc="NLL", unit="batch", disable=not progress)
    results: list[Tensor] = []
    running_sum, running_count = 0.0, 0
    for index, batch in enumerate(bar):
        batch = batch.to(device) if device is not None else batch
        schedule, node_distribution = schedule.to(batch.x.device), node_distribution.to(batch.x.device)
        if isinstance(generator, int):
            generator = torch.Generator(batch.x.device).manual_seed(generator)
        nll = sum(
            variational_nll(denoiser, schedule, batch, node_distribution, generator).total for _ in range(passes)
        ) / passes  # [B]
        if not torch.isfinite(nll).all():
            raise LikelihoodError(f"non-finite NLL in batch {index}")
        results.append(nll.cpu())
        running_sum, running_count = running_sum + float(nll.sum()), running_count + nll.numel()
        bar.set_postfix(nll=f"{running_sum / running_count:.3f}")
    return torch.cat(results) if results else torch.zeros(0, dtype=torch.float64)
