"""EDM's adaptive gradient clipping (Hoogeboom et al. 2022, code: `gradient_clipping` with a `Queue`).

Before each step the threshold is 1.5 * mean + 2 * std (population std) of the last 50 recorded gradient norms;
the history starts as [3000]. The global gradient norm is clipped to the threshold; a clipped step records the
threshold, an unclipped one its own norm, so one huge gradient cannot inflate later thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

HISTORY_LENGTH = 50
INITIAL_NORM = 3000.0


class AdaptiveClipper:
    """The history of recorded gradient norms and the threshold it implies.

    Args:
        history: recorded norms to start from (default EDM's [3000]); only the last 50 are kept.
    """

    def __init__(self, history: Iterable[float] | None = None, length: int = HISTORY_LENGTH) -> None:
        self.length = length
        self.history: list[float] = [float(v) for v in (history if history is not None else [INITIAL_NORM])][-length:]
        if not self.history:
            raise ValueError("the clipping history must hold at least one norm")

    def threshold(self) -> float:
        """1.5 * mean + 2 * std of the recorded norms (population std)."""
        n = len(self.history)
        mean = sum(self.history) / n
        variance = sum((v - mean) ** 2 for v in self.history) / n
        return 1.5 * mean + 2.0 * math.sqrt(variance)

    def record(self, grad_norm: float) -> tuple[float, bool]:
        """Record a finite step's raw gradient norm: returns (threshold, clipped?) and appends
        the threshold if the norm exceeded it, else the norm."""
        threshold = self.threshold()
        clipped = grad_norm > threshold
        self.history.append(threshold if clipped else float(grad_norm))
        del self.history[: -self.length]
        return threshold, clipped

    def state_dict(self) -> list[float]:
        """The recorded norms (oldest first)."""
        return list(self.history)


def global_grad_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together (0-dim tensor on the gradients' device)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


def scale_gradients(parameters: list[torch.nn.Parameter], max_norm: float, total_norm: torch.Tensor) -> None:
    """Scale the gradients by max_norm / (total_norm + 1e-6) (as torch's clip_grad_norm_ does)."""
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, total_norm)
