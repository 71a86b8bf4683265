"""The batch order of each training epoch: size-bucketed (dense layouts pad to the largest molecule of a batch) or
uniformly random. Each epoch's order comes from (seed, epoch) alone, so it can be rebuilt exactly when a run resumes."""

from __future__ import annotations

import torch
from torch import Tensor


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s batch order in a run seeded with `seed`, within torch's 0 ... 2^64 - 1 (modulo
    2^64: the same value as without the modulus for every seed below 1.8e13)."""
    return (seed * 1_000_003 + epoch) % 2**64


class SizeBucketBatchSampler:
    """Yields batches (index tensors) of molecules with similar atom counts, in a random order each epoch.

    Each epoch shuffles the molecules, sorts them stably by atom count (so equal sizes stay shuffled), cuts
    the sorted list into batches of `batch_size`, and shuffles the batches. All randomness comes from
    `epoch_seed(seed, epoch)`.
    """

    def __init__(self, num_atoms: Tensor, batch_size: int, seed: int = 0, drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_atoms, self.batch_size, self.seed, self.drop_last = num_atoms, batch_size, seed, drop_last

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(len(self.num_atoms), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def epoch(self, epoch: int) -> list[Tensor]:
        """The batches of one epoch, each an int64 tensor of dataset indices."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        shuffled = torch.randperm(len(self.num_atoms), generator=generator)  # [D]
        by_size = shuffled[torch.argsort(self.num_atoms[shuffled], stable=True)]  # [D]
        batches = list(torch.split(by_size, self.batch_size))
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in order]


class RandomBatchSampler:
    """Uniformly random batches (no size bucketing); epoch e's order from `epoch_seed(seed, e)`, the last partial
    batch dropped."""

    def __init__(self, num_atoms: Tensor, batch_size: int, seed: int = 0) -> None:
        self.size, self.batch_size, self.seed = len(num_atoms), batch_size, seed

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.size // self.batch_size

    def epoch(self, epoch: int) -> list[Tensor]:
        """The batches of one epoch, each an int64 tensor of dataset indices."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.size, generator=generator)  # [D]
        return list(torch.split(order[: len(self) * self.batch_size], self.batch_size))
