"""Where a run is in its stream of batches: the epoch, the next batch within it, and that epoch's batch order."""

from __future__ import annotations

from typing import Any

from torch import Tensor


class EpochCursor:
    """The position of the next batch (`epoch`, `batch_in_epoch`) in the epochs of a batch sampler.

    The sampler's `epoch(e)` gives epoch e's batches (from (seed, e) alone); the current epoch's are kept.
    """

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.epoch = 0  # epoch of the next batch
        self.batch_in_epoch = 0  # index of the next batch within its epoch
        self._cache: tuple[int, list[Tensor]] | None = None

    def _batches(self, epoch: int) -> list[Tensor]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.sampler.epoch(epoch))
        return self._cache[1]

    def next_indices(self) -> tuple[Tensor, int]:
        """The dataset indices [B] of the next batch and its epoch (moving on to the next epoch at the end of one)."""
        batches = self._batches(self.epoch)
        if self.batch_in_epoch >= len(batches):
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            batches = self._batches(self.epoch)
        return batches[self.batch_in_epoch], self.epoch

    def following(self) -> Tensor | None:
        """The batch after the next one, if it is in the same epoch (what to prepare ahead)."""
        batches = self._batches(self.epoch)
        return batches[self.batch_in_epoch + 1] if self.batch_in_epoch + 1 < len(batches) else None

    def advance(self) -> None:
        """The next batch has been taken."""
        self.batch_in_epoch += 1

    def move_to(self, epoch: int, batch_in_epoch: int) -> None:
        """Continue at batch `batch_in_epoch` of epoch `epoch` (a resumed run)."""
        self.epoch, self.batch_in_epoch, self._cache = epoch, batch_in_epoch, None


def rescaled_position(payload: dict[str, Any], batch_size: int) -> int:
    """A checkpoint's position in its epoch (`batch_in_epoch`) in batches of `batch_size` molecules.

    A run resumed with another batch size keeps the fraction of the epoch it had done (the batches themselves
    differ, so this is where the exact replay of the data ends).
    """
    stored = int(payload["config"]["data"]["batch_size"])
    return int(payload["batch_in_epoch"]) * stored // batch_size
