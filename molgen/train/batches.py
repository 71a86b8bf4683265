"""What each training step trains on: the run's molecules, the position in an epoch, and the next batch prepared
in the background (the batch order itself: molgen.data.sampler).

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

class FirstMolecules:
    """The first `count` molecules of a data set (same indices, so the same per-molecule randomness)."""

    def __init__(self, dataset, count: int) -> None:
        self.dataset, self.count = dataset, min(count, len(dataset))
        self.num_atoms = dataset.num_atoms[: self.count]  # [count]

    def __len__(self) -> int:
        return self.count

    def batch(self, indices) -> MoleculeBatch:
        return self.dataset.batch(indices)


def rescaled_position(payload: dict[str, Any], batch_size: int) -> int:
    """A checkpoint's position in its epoch (`batch_in_epoch`) in batches of `batch_size` molecules.

    A run resumed with another batch size keeps the fraction of the epoch it had done (the batches themselves
    differ, so this is where the exact replay of the data ends).
    """
    stored = int(payload["config"]["data"]["batch_size"])
    return int(payload["batch_in_epoch"]) * stored // batch_size


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
