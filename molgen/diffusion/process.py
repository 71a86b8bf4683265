"""EDM's forward process on molecules and its l2 training loss (Hoogeboom et al. 2022, Alg. 1).

The state of an atom is [x (3), one-hot / 4 (5), Z / 10 (1)]: 9 channels, positions in the zero-centroid
subspace of each molecule. Noising at an integer step t: z_t = alpha_t * [x, h] + sigma_t * eps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.discrete import neg_log_p_charge_given_z0, neg_log_p_one_hot_given_z0
from molgen.diffusion.schedule import NoiseSchedule, alpha, sigma
from molgen.diffusion.weighting import loss_weight
from molgen.elements import ELEMENTS, NORM_VALUES, NUM_FEATURES
from molgen.geometry.centroid import remove_centroid

NUM_TYPES = len(ELEMENTS)  # 5 one-hot channels
STATE_DIM = 3 + NUM_FEATURES  # 9 channels per atom

Denoiser = Callable[[Tensor, Tensor, Tensor, MoleculeLayout], tuple[Tensor, Tensor]]
"""denoiser(z_x [M, 3], z_h [M, 6], t [B] in [0, 1], layout) -> (eps_x [M, 3] zero centroid, eps_h [M, 6])."""

Normalization = Literal["molecule", "padded"]


def batch_to_state(batch: MoleculeBatch, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Scaled state (x, h) of a batch: x re-centred, h = [one-hot / 4, Z / 10].

    Shapes: -> x [M, 3], h [M, 6]; dtype defaults to the batch's position dtype.
    """
    dtype = dtype or batch.x.dtype
    x = remove_centroid(batch.x.to(dtype), batch.batch, batch.num_molecules)  # [M, 3]
    one_hot = F.one_hot(batch.atom_type, NUM_TYPES).to(dtype) / NORM_VALUES[1]  # [M, 5]
    charge = batch.charge.to(dtype).unsqueeze(1) / NORM_VALUES[2]  # [M, 1]
    return x / NORM_VALUES[0], torch.cat([one_hot, charge], dim=1)  # [M, 3], [M, 6]


def state_to_batch(x: Tensor, h: Tensor, layout: MoleculeLayout) -> MoleculeBatch:
    """Decode a state: atom type = argmax of the one-hot part, charge = round(10 * charge part) (EDM's sampler).

    The batch's `charge` holds the decoded charge, which may disagree with the atom type for a poor model.
    Shapes: x [M, 3], h [M, 6] -> MoleculeBatch with positions re-centred.
    """
    atom_type = h[:, :NUM_TYPES].argmax(dim=1)  # [M]
    charge = torch.round(h[:, NUM_TYPES] * NORM_VALUES[2]).long()  # [M]
    decoded = MoleculeBatch.from_arrays(x * NORM_VALUES[0], atom_type, layout.num_atoms)
    return replace(decoded, charge=charge)


def sum_per_molecule(values: Tensor, batch: Tensor, num_molecules: int) -> Tensor:
    """Sum per-atom values [M] or [M, C] over each molecule's atoms (and channels) -> [B]."""
    per_atom = values.reshape(values.shape[0], -1).sum(dim=1)  # [M]
    return per_atom.new_zeros(num_molecules).index_add_(0, batch, per_atom)  # [B]


def sample_noise(
    layout: MoleculeLayout,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """eps ~ N(0, I) on the state, the position part projected to zero centroid per molecule.

    One draw of [M, 9] from the generator, so the stream does not depend on how the result is used.
    Shapes: -> eps_x [M, 3], eps_h [M, 6].
    """
    device = layout.batch.device if device is None else device
    eps = torch.randn(layout.batch.numel(), STATE_DIM, dtype=dtype, device=device, generator=generator)  # [M, 9]
    eps_x = remove_centroid(eps[:, :3], layout.batch, layout.num_molecules)  # [M, 3]
    return eps_x, eps[:, 3:]  # [M, 3], [M, 6]


def noise_state(
    x: Tensor, h: Tensor, gamma_t: Tensor, eps_x: Tensor, eps_h: Tensor, layout: MoleculeLayout
) -> tuple[Tensor, Tensor]:
    """z_t = alpha_t * [x, h] + sigma_t * eps with per-molecule gamma_t.

    Shapes: x [M, 3], h [M, 6], gamma_t [B] (any float dtype; computed in float64), eps like x, h -> z_x, z_h.
    """
    gamma_atom = gamma_t.to(torch.float64)[layout.batch].unsqueeze(1)  # [M, 1]
    alpha_t, sigma_t = alpha(gamma_atom).to(x.dtype), sigma(gamma_atom).to(x.dtype)  # [M, 1], [M, 1]
    return alpha_t * x + sigma_t * eps_x, alpha_t * h + sigma_t * eps_h  # [M, 3], [M, 6]


def call_denoiser(
    denoiser: Denoiser, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """Run the denoiser on inputs cast to `dtype` (default z_x's) and cast its outputs back to z_x's dtype."""
    dtype = dtype or z_x.dtype
    eps_x, eps_h = denoiser(z_x.to(dtype), z_h.to(dtype), t.to(dtype), layout)  # [M, 3], [M, 6]
    return eps_x.to(z_x.dtype), eps_h.to(z_x.dtype)


def neg_log_p_h_given_z0(z0_h: Tensor, batch: MoleculeBatch, sigma_0: Tensor) -> tuple[Tensor, Tensor]:
    """The charge and one-hot parts of -log p(h | z_0), per molecule [B] each (float64).

    Shapes: z0_h [M, 6], sigma_0 scalar tensor.
    """
    z0_h = z0_h.to(torch.float64)  # [M, 6]
    sigma_0 = sigma_0.to(torch.float64)
    atomic_number = batch.charge.to(torch.float64)  # [M]
    charge = neg_log_p_charge_given_z0(z0_h[:, NUM_TYPES], atomic_number, sigma_0, NORM_VALUES[2])  # [M]
    one_hot = neg_log_p_one_hot_given_z0(z0_h[:, :NUM_TYPES], batch.atom_type, sigma_0, NORM_VALUES[1])  # [M]
    num_molecules = batch.num_molecules
    return sum_per_molecule(charge, batch.batch, num_molecules), sum_per_molecule(one_hot, batch.batch, num_molecules)


@dataclass(frozen=True)
class DiffusionLoss:
    """The l2 training loss: the mean over molecules, per-molecule values and the steps drawn.

    Attributes:
        loss: mean over molecules, scalar (differentiable).
        per_molecule: per-molecule loss [B].
        t_int: the integer step of each molecule [B].
    """

    loss: Tensor
    per_molecule: Tensor
    t_int: Tensor


def diffusion_loss(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    batch: MoleculeBatch,
    generator: torch.Generator | None = None,
    normalization: Normalization = "molecule",
    t_int: Tensor | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
    padded_atoms: int | None = None,
    weighting: str = "edm",
    min_snr_gamma: float = 5.0,
) -> DiffusionLoss:
    """EDM's l2 training loss (EDM Alg. 1 with its QM9 settings) in the batch's position dtype.

    t ~ U{0..T} per molecule; for t > 0 the loss is 1/2 sum ||eps - eps_hat||^2 over the molecule's atoms and
    9 channels; at t = 0 it is EDM's reconstruction term -log p(x, h | z_0) without constants: the position part
    1/2 ||eps_x - eps_hat_x||^2 plus the discrete feature terms (which carry no gradient). The squared errors are
    divided by 9 * N with
      - normalization="molecule" (default): N = the molecule's own atom count, so a molecule's loss does not
        depend on which molecules share its batch (bucketing, batch size, data-parallel splits);
      - normalization="padded": N = the largest molecule in the batch, EDM's padded normalisation (or
        `padded_atoms`: a data-parallel shard passes the largest molecule of the whole batch).
    The constant terms of EDM's printed training loss (kl_prior, -log p(N)) have no gradient and are left out.
    `weighting` (molgen.diffusion.weighting; min_snr with `min_snr_gamma`) multiplies the terms at t > 0.

    Args:
        t_int: optional steps [B] (else drawn from the generator); noise: optional (eps_x [M, 3], eps_h [M, 6]).
        padded_atoms: N for normalization="padded" (default: the largest molecule of `batch`).
    """
    if normalization not in ("molecule", "padded"):
        raise ValueError(f"normalization must be 'molecule' or 'padded', got {normalization!r}")
    layout, dtype, device = batch.layout, batch.x.dtype, batch.x.device
    num_molecules = batch.num_molecules
    if t_int is None:
        t_int = torch.randint(0, schedule.timesteps + 1, (num_molecules,), device=device, generator=generator)  # [B]
    eps_x, eps_h = noise if noise is not None else sample_noise(layout, dtype, device, generator)  # [M, 3], [M, 6]
    x, h = batch_to_state(batch)  # [M, 3], [M, 6]
    gamma_t = schedule.gamma_at(t_int)  # [B]
    z_x, z_h = noise_state(x, h, gamma_t, eps_x, eps_h, layout)  # [M, 3], [M, 6]
    t = t_int.to(torch.float64) / schedule.timesteps  # [B]
    eps_hat_x, eps_hat_h = call_denoiser(denoiser, z_x, z_h, t, layout)  # [M, 3], [M, 6]
    error_x = sum_per_molecule((eps_x - eps_hat_x) ** 2, batch.batch, num_molecules)  # [B]
    error_h = sum_per_molecule((eps_h - eps_hat_h) ** 2, batch.batch, num_molecules)  # [B]
    num_atoms = batch.num_atoms.to(dtype)  # [B]
    padded_n = num_atoms.max() if padded_atoms is None else num_atoms.new_tensor(padded_atoms)  # []
    per_molecule_n = num_atoms if normalization == "molecule" else padded_n.expand_as(num_atoms)  # [B]
    denominator = STATE_DIM * per_molecule_n  # [B]
    loss_t = 0.5 * (error_x + error_h) / denominator  # [B]
    if weighting != "edm":  # EDM's weight is 1: its loss stays bit for bit as it was
        loss_t = loss_t * loss_weight(gamma_t, weighting, min_snr_gamma).to(dtype)  # [B]
    charge_0, one_hot_0 = neg_log_p_h_given_z0(z_h, batch, sigma(schedule.gamma_table[0]))  # [B], [B]
    loss_0 = 0.5 * error_x / denominator + (charge_0 + one_hot_0).to(dtype)  # [B]
    per_molecule = torch.where(t_int == 0, loss_0, loss_t)  # [B]
    return DiffusionLoss(loss=per_molecule.mean(), per_molecule=per_molecule, t_int=t_int)
