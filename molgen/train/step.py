"""One optimisation step of EDM training (Hoogeboom et al. 2022) on a prepared batch.

EDM's l2 loss; backward; a non-finite loss or gradient norm skips the step (weights, optimizer, EMA and clipping
history untouched); EDM's adaptive gradient clipping; AdamW (amsgrad) at the scheduled learning rate; the EMA
update. In a data-parallel run DistributedDataParallel averages the gradients, so every process skips, clips and
steps alike.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch
from molgen.config import TrainConfig
from molgen.diffusion import diffusion_loss
from molgen.errors import MolgenError
from molgen.train.clipping import AdaptiveClipper, global_grad_norm, scale_gradients
from molgen.train.distributed import World, gather_over_processes, mean_over_processes
from molgen.train.ema import EMASet
from molgen.train.timesampling import ImportanceSampler

log = logging.getLogger(__name__)


class NonFiniteError(MolgenError):
    """Too many consecutive steps had a non-finite loss or gradient norm."""


@dataclass(frozen=True)
class StepResult:
    """One training step: the loss, the raw gradient norm, clipping, the learning rate and whether it was skipped."""

    step: int
    epoch: int
    loss: float
    grad_norm: float
    threshold: float | None
    clipped: bool
    skipped: bool
    lr: float
    num_molecules: int


class Update(NamedTuple):
    """What one optimisation step did: the loss (mean over the processes), the raw gradient norm, clipping."""

    loss: float
    grad_norm: float
    threshold: float | None
    clipped: bool
    skipped: bool


class OptimisationStep:
    """EDM's optimisation step for a model, its optimizer and EMAs; keeps the clipping history and skip counts.

    Args:
        model: the denoiser (the optimizer's and the EMAs' weights).
        parallel_model: the model as the loss calls it (wrapped in DistributedDataParallel with several processes).
        schedule: the noise schedule.
        optimizer: AdamW over `parameters`, the model's trainable parameters.
        emas: the EMAs of the weights.
        world: the processes of the run.
        train: the run's training settings (adaptive_clipping, max_consecutive_nonfinite).
        normalization: the loss normalisation (config.diffusion.normalization).
        The loss weighting (train.loss_weighting, train.min_snr_gamma) multiplies the terms at t > 0; with
        train.time_sampling = "importance" each molecule's term is also weighted by p / q of its t.

    Attributes:
        clipper: EDM's adaptive clipping and its history of gradient norms.
        time_sampler: the proposal of importance-sampled t and its history of losses (None: t ~ U{0..T}).
        consecutive_nonfinite: steps skipped in a row as non-finite.
        skipped_steps: steps skipped in all.
    """

    def __init__(self, model: torch.nn.Module, parallel_model: torch.nn.Module, schedule,
                 parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, emas: EMASet, world: World,
                 train: TrainConfig, normalization: str) -> None:
        self.model, self.parallel_model, self.schedule = model, parallel_model, schedule
        self.parameters, self.optimizer, self.emas, self.world = parameters, optimizer, emas, world
        self.adaptive_clipping, self.normalization = train.adaptive_clipping, normalization
        self.weighting = {"weighting": train.loss_weighting, "min_snr_gamma": train.min_snr_gamma}
        self.max_consecutive_nonfinite = train.max_consecutive_nonfinite
        self.clipper = AdaptiveClipper()
        self.time_sampler = (ImportanceSampler(schedule.timesteps, train.importance_history,
                                               train.importance_refit_every)
                             if train.time_sampling == "importance" else None)
        self.consecutive_nonfinite = 0
        self.skipped_steps = 0

    def __call__(self, batch: MoleculeBatch, t_int: Tensor, noise: tuple[Tensor, Tensor], lr: float, step: int,
                 padded_atoms: int | None = None) -> Update:
        """Step on `batch` (this process's shard) with its steps t_int [B] and noise (eps_x [M, 3], eps_h [M, 6]).

        `padded_atoms`: the largest molecule of the global batch, for the "padded" loss normalisation.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        per_molecule = self.per_molecule_loss(batch, t_int, noise, padded_atoms)  # [B]
        loss = self._objective(per_molecule, t_int)
        loss_value, grad_norm = mean_over_processes(loss, self.world), math.nan
        if math.isfinite(loss_value):
            loss.backward()  # DistributedDataParallel averages the gradients over the processes
            norm = global_grad_norm(self.parameters)  # [] raw global norm
            grad_norm = float(norm)
        finite = math.isfinite(loss_value) and math.isfinite(grad_norm)
        self._record_times(t_int, per_molecule if finite else None, step)
        if not finite:
            self._skip(step, "loss" if not math.isfinite(loss_value) else "gradient norm")
            return Update(loss_value, grad_norm, None, False, True)
        threshold, clipped = self._clip(grad_norm, norm)
        self.optimizer.step()
        self.emas.update(self.model)
        self.consecutive_nonfinite = 0
        return Update(loss_value, grad_norm, threshold, clipped, False)

    def per_molecule_loss(self, batch: MoleculeBatch, t_int: Tensor, noise: tuple[Tensor, Tensor],
                          padded_atoms: int | None) -> Tensor:
        """EDM's diffusion loss of each molecule [B] (a training task overrides it: molgen.property.training)."""
        return diffusion_loss(self.parallel_model, self.schedule, batch, normalization=self.normalization,
                              t_int=t_int, noise=noise, padded_atoms=padded_atoms, **self.weighting).per_molecule

    def _objective(self, per_molecule: Tensor, t_int: Tensor) -> Tensor:
        """The mean over the molecules [B] of their losses, each weighted by p / q of its t when t is drawn from q."""
        if self.time_sampler is None:
            return per_molecule.mean()
        return (self.time_sampler.weights(t_int).to(per_molecule.dtype) * per_molecule).mean()

    def _record_times(self, t_int: Tensor, per_molecule: Tensor | None, step: int) -> None:
        """Give the importance sampler every process's losses at their t (None: the step was skipped)."""
        if self.time_sampler is None:
            return
        if per_molecule is not None:
            t_int = gather_over_processes(t_int, self.world)  # [B] the global batch, in rank order
            per_molecule = gather_over_processes(per_molecule.detach(), self.world)  # [B]
        self.time_sampler.record(t_int, per_molecule, step)

    def _skip(self, step: int, what: str) -> None:
        """Drop the gradients of a step whose `what` is not finite, and count it."""
        self.optimizer.zero_grad(set_to_none=True)
        self.consecutive_nonfinite += 1
        self.skipped_steps += 1
        log.warning("step %d skipped: non-finite %s (%d in a row)", step, what, self.consecutive_nonfinite)

    def _clip(self, grad_norm: float, norm: Tensor) -> tuple[float | None, bool]:
        """EDM's adaptive clipping, when on: the threshold, and whether the gradients were scaled down to it."""
        if not self.adaptive_clipping:
            return None, False
        threshold, clipped = self.clipper.record(grad_norm)
        if clipped:
            scale_gradients(self.parameters, threshold, norm)
        return threshold, clipped

    def check_nonfinite(self, step: int, last_path: Path) -> None:
        """NonFiniteError once `max_consecutive_nonfinite` steps in a row were skipped (`step`: the last one)."""
        if self.consecutive_nonfinite < self.max_consecutive_nonfinite:
            return
        where = f"; the last checkpoint {last_path} is intact" if last_path.exists() else ""
        raise NonFiniteError(
            f"training stopped at step {step}: {self.consecutive_nonfinite} consecutive steps with a non-finite "
            f"loss or gradient norm{where} (lower train.lr, or check the data and the model)"
        )
