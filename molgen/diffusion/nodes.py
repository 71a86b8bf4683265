"""p(N), the distribution of atom counts: EDM samples N from the training histogram and adds -log p(N) to the NLL."""

from __future__ import annotations

import torch
from torch import Tensor

from molgen.diffusion._float64 import Float64Buffers


class NodeCountDistribution(Float64Buffers):
    """A categorical distribution over atom counts from a histogram of counts indexed by atom count.

    Args:
        histogram: counts (or unnormalised weights) [N_max + 1]; entry N is the weight of molecules with N atoms.
    """

    histogram: Tensor

    def __init__(self, histogram: Tensor) -> None:
        super().__init__()
        histogram = torch.as_tensor(histogram).detach().to(torch.float64).clone()  # [N_max + 1]
        if histogram.ndim != 1 or histogram.numel() == 0:
            raise ValueError(f"histogram must be one-dimensional [N_max + 1], got shape {tuple(histogram.shape)}")
        if not torch.isfinite(histogram).all() or (histogram < 0).any() or histogram.sum() <= 0:
            raise ValueError("histogram must hold finite, non-negative counts with a positive total")
        self.register_buffer("histogram", histogram)  # [N_max + 1]

    @classmethod
    def from_num_atoms(cls, num_atoms: Tensor) -> NodeCountDistribution:
        """The histogram of the atom counts of a data set, e.g. EDM's training split [num molecules]."""
        return cls(torch.bincount(torch.as_tensor(num_atoms).long()))

    @property
    def probabilities(self) -> Tensor:
        """p(N) for N = 0..N_max, float64 [N_max + 1]."""
        return self.histogram / self.histogram.sum()

    @property
    def supported(self) -> list[int]:
        """The atom counts with non-zero probability."""
        return torch.nonzero(self.histogram > 0).flatten().tolist()

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw `num` atom counts, int64 [num], on the generator's device (else the histogram's)."""
        probabilities = self.probabilities  # [N_max + 1]
        probabilities = probabilities if generator is None else probabilities.to(generator.device)
        return torch.multinomial(probabilities, num, replacement=True, generator=generator)  # [num]

    def check_supported(self, num_atoms: Tensor) -> None:
        """Raise ValueError naming any count in num_atoms [B] that has zero probability."""
        num_atoms = torch.as_tensor(num_atoms).long().to(self.histogram.device)  # [B]
        inside = (num_atoms >= 0) & (num_atoms < self.histogram.numel())  # [B]
        ok = inside.clone()  # [B]
        ok[inside] = self.histogram[num_atoms[inside]] > 0
        if not ok.all():
            bad = sorted(set(num_atoms[~ok].tolist()))
            raise ValueError(
                f"atom count(s) {bad} have zero probability under the node-count histogram; "
                f"supported counts: {_ranges(self.supported)}"
            )

    def log_prob(self, num_atoms: Tensor) -> Tensor:
        """log p(N) for each count in num_atoms [B], float64 [B]; ValueError for unsupported counts."""
        self.check_supported(num_atoms)
        num_atoms = torch.as_tensor(num_atoms).long().to(self.histogram.device)  # [B]
        return torch.log(self.probabilities)[num_atoms]  # [B]

    def extra_repr(self) -> str:
        return f"supported={_ranges(self.supported)}"


def _ranges(values: list[int]) -> str:
    """Compact text for a sorted list of integers: [3, 4, 5, 7] -> '3-5, 7'."""
    parts: list[str] = []
    start = previous = None
    for value in values + [None]:
        if start is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(f"{start}" if start == previous else f"{start}-{previous}")
        start = previous = value
    return ", ".join(parts)
