"""What each training step trains on: the molecules of a batch with each one's t and noise, on the device, and the
next batch prepared in the background.

Every molecule's randomness at a step comes from a generator seeded by (run seed, step, dataset index)
(molgen.train.randomness), so a batch and its noise depend on nothing else: they can be prepared ahead on another
thread (`Prefetcher`, which overlaps this CPU work with the step on a GPU) and give the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch
from molgen.errors import MolgenError
from molgen.geometry.centroid import remove_centroid
from molgen.train.randomness import per_sample_noise, per_sample_rotations, per_sample_uniforms


class FirstMolecules:
    """The first `count` molecules of a data set (same indices, so the same per-molecule randomness)."""

    def __init__(self, dataset, count: int) -> None:
        self.dataset, self.count = dataset, min(count, len(dataset))
        self.num_atoms = dataset.num_atoms[: self.count]  # [count]

    def __len__(self) -> int:
        return self.count

    def batch(self, indices) -> MoleculeBatch:
        return self.dataset.batch(indices)


def training_subset(dataset, max_molecules: int | None, batch_size: int, processes: int):
    """The molecules a run trains on: the first `max_molecules` of `dataset` (all if None); MolgenError if they
    make less than one batch, or the batch does not split evenly over the processes."""
    if max_molecules is not None:
        dataset = FirstMolecules(dataset, max_molecules)
    if len(dataset) < batch_size:
        raise MolgenError(f"the training set has {len(dataset)} molecules, fewer than one batch ({batch_size})")
    if batch_size % processes:
        raise MolgenError(f"data.batch_size ({batch_size}) must be a multiple of the number of processes "
                          f"({processes}): each takes an equal share of every batch")
    return dataset


class StepBatches:
    """The molecules at given dataset indices with their steps t and noise for one training step, on the device.

    Args:
        dataset: anything with `num_atoms` [D] and `batch(indices)`.
        seed: the run seed.
        timesteps: T, the diffusion steps (t ~ U{0..T}).
        device: where the step runs.
        prefetch: prepare the next batch on a background thread while a step trains.
        random_rotation: turn every molecule by its own random rotation (`per_sample_rotations`) each step.
        time_sampler: an `ImportanceSampler` (molgen.train.timesampling) to draw t from, else t ~ U{0..T}. What is
            prepared ahead holds uniforms u (`per_sample_uniforms`); `prepare` maps them to t by the current proposal.
    """

    def __init__(self, dataset, seed: int, timesteps: int, device: torch.device, prefetch: bool,
                 random_rotation: bool = False, time_sampler=None) -> None:
        self.dataset, self.seed, self.timesteps, self.device = dataset, seed, timesteps, device
        self.random_rotation, self.time_sampler = random_rotation, time_sampler
        self.num_atoms = [int(n) for n in dataset.num_atoms]  # per dataset index, for the noise
        self.prefetcher = Prefetcher(self.prepare_host) if prefetch else None

    def prepare_host(self, indices: Tensor, step: int) -> tuple[MoleculeBatch, Tensor, Tensor, Tensor | None]:
        """On the CPU: the molecules at `indices`, their steps t_int [B] ~ U{0..T}, noise eps [M, 9] and, with a
        time sampler, the uniforms u [B] that `prepare` maps to their steps."""
        batch = self.dataset.batch(indices)
        index_list = indices.tolist()
        t_int, eps = per_sample_noise(self.seed, step, index_list, [self.num_atoms[i] for i in index_list],
                                      self.timesteps, batch.x.dtype)  # [B], [M, 9]
        if self.random_rotation:
            rotation = per_sample_rotations(self.seed, step, index_list, batch.x.dtype)  # [B, 3, 3]
            batch = batch.with_positions(torch.einsum("mij,mj->mi", rotation[batch.batch], batch.x))  # [M, 3]
        u = per_sample_uniforms(self.seed, step, index_list) if self.time_sampler is not None else None  # [B]
        return batch, t_int, eps, u

    def prepare(self, indices: Tensor, step: int) -> tuple[MoleculeBatch, Tensor, tuple[Tensor, Tensor]]:
        """The molecules at `indices` on the device, their steps t_int [B] and noise (eps_x [M, 3], eps_h [M, 6])."""
        host = self.prefetcher.get(indices, step) if self.prefetcher else self.prepare_host(indices, step)
        batch, t_int, eps, u = host
        if u is not None:
            t_int = self.time_sampler.steps(u)  # [B] from the proposal in force at this step
        non_blocking = self.device.type == "cuda"
        batch = batch.to(self.device) if batch.x.device != self.device else batch
        t_int = t_int.to(self.device, non_blocking=non_blocking)  # [B]
        eps = eps.to(self.device, non_blocking=non_blocking)  # [M, 9]
        eps_x = remove_centroid(eps[:, :3], batch.batch, batch.num_molecules)  # [M, 3]
        return batch, t_int, (eps_x, eps[:, 3:])

    def ahead(self, indices: Tensor, step: int) -> None:
        """Start preparing `indices` for `step` in the background (with a prefetcher)."""
        if self.prefetcher is not None:
            self.prefetcher.ahead(indices, step)

    def largest(self, indices: Tensor) -> int:
        """The atom count of the largest molecule at `indices` [B]."""
        return max(self.num_atoms[i] for i in indices.tolist())

    def close(self) -> None:
        """Stop preparing ahead."""
        if self.prefetcher is not None:
            self.prefetcher.close()


class Prefetcher:
    """Runs `prepare(indices, step)` for the next step on a background thread while the current step trains.

    `get` returns the prepared result when it was prepared for the same step and indices, else prepares now.
    """

    def __init__(self, prepare: Callable[[Tensor, int], Any]) -> None:
        self.prepare = prepare
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Tensor, Future] | None = None

    def get(self, indices: Tensor, step: int) -> Any:
        """The prepared (or freshly prepared) result for `indices` at `step`."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == step and torch.equal(pending[1], indices):
            return pending[2].result()
        return self.prepare(indices, step)

    def ahead(self, indices: Tensor, step: int) -> None:
        """Start preparing `indices` for `step` in the background."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="molgen-prefetch")
        self._pending = (step, indices, self._pool.submit(self.prepare, indices, step))

    def close(self) -> None:
        """Drop pending work and stop the thread."""
        self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
