"""Importance sampling of the diffusion step t (Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic
Models", sec. 3.3), train.time_sampling = "importance".

The training objective is the mean of the per-step loss L_t over t uniform on {0..T}, p_t = 1 / (T + 1). Drawing t
from a proposal q instead and weighting each term by p_t / q_t keeps its expectation: sum_t q_t (p_t / q_t) L_t =
sum_t p_t L_t. The proposal is q_t proportional to sqrt(E[L_t^2]) over the last K losses recorded at each t, mixed
with a uniform floor so that q > 0 everywhere; it stays uniform until every t has K losses.

Resumable and identical in every process: the losses are recorded after each step (gathered from all processes of
a data-parallel run, in rank order), the proposal is refitted from them after every R-th step, and everything is
saved with the checkpoint. The prefetcher draws only a uniform u per molecule (molgen.train.randomness); the step
maps u to t through the proposal in force at that step, so what is prepared ahead never depends on the proposal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

UNIFORM_FLOOR = 0.01  # the share of q spread uniformly: p / q <= 1 / UNIFORM_FLOOR = 100


class ImportanceSampler:
    """The proposal q over t in {0..T}, its history of losses per t, and its refits.

    Args:
        timesteps: T.
        history: K, the losses kept per t (train.importance_history).
        refit_every: R, refit after every R-th step (train.importance_refit_every).

    Attributes:
        losses: the last K losses at each t, a ring per row [T + 1, K] float64.
        counts: losses recorded at each t [T + 1] int64 (the ring's next slot is count % K).
        proposal: q [T + 1] float64, the distribution t is drawn from.
    """

    def __init__(self, timesteps: int, history: int, refit_every: int) -> None:
        self.timesteps, self.history, self.refit_every = timesteps, history, refit_every
        self.losses = torch.zeros(timesteps + 1, history, dtype=torch.float64)  # [T + 1, K]
        self.counts = torch.zeros(timesteps + 1, dtype=torch.int64)  # [T + 1]
        self.proposal = torch.full((timesteps + 1,), 1 / (timesteps + 1), dtype=torch.float64)  # [T + 1]

    def steps(self, u: Tensor) -> Tensor:
        """t [B] int64 drawn from q by inverting its CDF at uniforms u [B] in [0, 1) (on u's device)."""
        cdf = torch.cumsum(self.proposal, 0)  # [T + 1]
        t_int = torch.searchsorted(cdf, u.to(torch.float64).cpu(), right=True)  # [B]
        return t_int.clamp(max=self.timesteps).to(u.device)

    def weights(self, t_int: Tensor) -> Tensor:
        """p / q at each molecule's t [B] -> [B] float64 on t_int's device (1 under a uniform q)."""
        p = 1 / (self.timesteps + 1)
        return (p / self.proposal[t_int.cpu()]).to(t_int.device)

    def record(self, t_int: Tensor, losses: Tensor | None, step: int) -> None:
        """Keep the per-molecule losses [B] at their t [B] (None: a skipped step), and refit after every R-th step."""
        if losses is not None:
            for t, loss in zip(t_int.tolist(), losses.detach().to(torch.float64).cpu().tolist()):
                self.losses[t, int(self.counts[t]) % self.history] = loss
                self.counts[t] += 1
        if (step + 1) % self.refit_every == 0:
            self.proposal = self.fitted_proposal()

    def fitted_proposal(self) -> Tensor:
        """q_t = (1 - floor) sqrt(E[L_t^2]) / sum_s sqrt(E[L_s^2]) + floor / (T + 1) from the history [T + 1];
        uniform until every t has K losses (or when the losses carry no weight)."""
        uniform = torch.full_like(self.proposal, 1 / (self.timesteps + 1))  # [T + 1]
        if int(self.counts.min()) < self.history:
            return uniform
        root_mean_square = self.losses.square().mean(dim=1).sqrt()  # [T + 1]
        total = root_mean_square.sum()
        if not (torch.isfinite(total) and total > 0):
            return uniform
        return (1 - UNIFORM_FLOOR) * root_mean_square / total + UNIFORM_FLOOR * uniform

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses.clone(), "counts": self.counts.clone(), "proposal": self.proposal.clone()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore `state_dict`'s state; None, or a state of another T or K, starts afresh (a uniform q)."""
        fresh = ImportanceSampler(self.timesteps, self.history, self.refit_every)
        fits = state is not None and tuple(state["losses"].shape) == tuple(self.losses.shape)
        source = state if fits else fresh.state_dict()
        self.losses = source["losses"].to(torch.float64).clone()
        self.counts = source["counts"].to(torch.int64).clone()
        self.proposal = source["proposal"].to(torch.float64).clone()
