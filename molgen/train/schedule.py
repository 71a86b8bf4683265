"""Learning-rate schedules counted in molecules seen, so a change of batch size (CPU <-> GPU) keeps them.

The main branch follows warmup-stable-decay (WSD; Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations"): a linear warm-up, then a constant learning rate for as long as the run goes
on. A cooldown branch, started from a main-branch checkpoint, decays the learning rate from the main branch's
value to `min_lr` with the paper's (1 - sqrt) shape over `cooldown_molecules`; its weights are the ones to ship.
The older cosine decay stays for the runs that were started with it.

Lengths given in steps (`warmup_steps`, `lr_decay_steps`, `max_steps`) are converted with the run's batch size, so
for a constant batch every step gets exactly the learning rate the step-based formula gave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LearningRateSchedule:
    """The learning rate of the step that starts after `molecules` molecules (see the module docstring).

    Attributes:
        peak: the main branch's learning rate after warm-up (train.lr).
        batch_size: molecules per step (the unit of the step-based lengths).
        warmup_molecules: length of the linear warm-up.
        decay: "none" (constant: the WSD main branch) or "cosine" (to min_lr at horizon_molecules).
        min_lr: the final learning rate of a decay or a cooldown.
        horizon_molecules: where the cosine decay reaches min_lr.
        rewarmup_start: molecules seen when a resume changed the peak or the batch size (None: no re-warm-up).
        rewarmup_molecules: length of that re-warm-up.
        cooldown_start: molecules seen when the cooldown branch left the main branch (None: the main branch).
        cooldown_molecules: length of the cooldown.
    """

    peak: float
    batch_size: int
    warmup_molecules: int = 0
    decay: str = "none"
    min_lr: float = 0.0
    horizon_molecules: int = 0
    rewarmup_start: int | None = None
    rewarmup_molecules: int = 0
    cooldown_start: int | None = None
    cooldown_molecules: int = 0

    def main_branch(self, molecules: int) -> float:
        """Warm-up, then constant (WSD) or cosine; a re-warm-up after a resume scales it linearly from ~0."""
        lr = self._warmup_then_decay(molecules)
        if self.rewarmup_start is not None and self.rewarmup_molecules > 0:
            done = molecules - self.rewarmup_start + self.batch_size
            lr *= min(max(done / self.rewarmup_molecules, 0.0), 1.0)
        return lr

    def _warmup_then_decay(self, molecules: int) -> float:
        if molecules < self.warmup_molecules:
            return self.peak * (molecules + self.batch_size) / self.warmup_molecules
        if self.decay == "none":
            return self.peak
        span = max(self.horizon_molecules - self.warmup_molecules, self.batch_size)
        progress = min(max((molecules - self.warmup_molecules) / span, 0.0), 1.0)
        return self.min_lr + 0.5 * (self.peak - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def __call__(self, molecules: int) -> float:
        """The learning rate of the next step; in a cooldown branch, (1 - sqrt) from the main branch's to min_lr."""
        if self.cooldown_start is None:
            return self.main_branch(molecules)
        start_lr = self.main_branch(self.cooldown_start)
        progress = min(max((molecules - self.cooldown_start + self.batch_size) / self.cooldown_molecules, 0.0), 1.0)
        return self.min_lr + (start_lr - self.min_lr) * (1.0 - math.sqrt(progress))

    def cooldown_end(self) -> int | None:
        """Molecules seen when the cooldown branch ends (None on the main branch)."""
        return None if self.cooldown_start is None else self.cooldown_start + self.cooldown_molecules


def build_schedule(train, batch_size: int, rewarmup_start: int | None = None,
                   cooldown_start: int | None = None) -> LearningRateSchedule:
    """The schedule of a TrainConfig at `batch_size` molecules per step, with the run's resume/branch points."""
    warmup = train.warmup_molecules or train.warmup_steps * batch_size
    horizon = (train.lr_decay_steps if train.lr_decay_steps is not None else train.max_steps) * batch_size
    return LearningRateSchedule(
        peak=train.lr, batch_size=batch_size, warmup_molecules=warmup, decay=train.lr_decay, min_lr=train.min_lr,
        horizon_molecules=horizon, rewarmup_start=rewarmup_start, rewarmup_molecules=train.rewarmup_molecules,
        cooldown_start=cooldown_start, cooldown_molecules=train.cooldown_molecules,
    )


def ema_decay_per_step(decay_per_64: float, batch_size: int) -> float:
    """An EMA decay given per 64 molecules (EDM's batch) as the decay of one step of `batch_size` molecules."""
    return decay_per_64 ** (batch_size / 64)


def sqrt_scaled_lr(lr: float, batch_size: int, reference_batch_size: int) -> float:
    """Adam's square-root rule (Malladi et al. 2022): the learning rate for a batch k times larger is sqrt(k) x."""
    return lr * math.sqrt(batch_size / reference_batch_size)
