"""Exponential moving average of a model's weights, as EDM keeps it (Hoogeboom et al. 2022, appendix).

ema <- decay * ema + (1 - decay) * current, after every optimizer step, for every parameter and floating buffer;
the average starts as an exact copy of the model and has no bias correction. Integer buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An averaged copy of `model` (`.module`, in eval mode, no gradients).

    Args:
        model: the model being trained; its current weights initialise the average.
        decay: weight of the old average in each update, in [0, 1) (0: the average is the model).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards `model`'s current parameters and buffers."""
        averaged, current = [], []
        for ema_tensor, tensor in zip(self._tensors(self.module), self._tensors(model), strict=True):
            if ema_tensor.is_floating_point():
                averaged.append(ema_tensor)
                current.append(tensor.detach())
            else:
                ema_tensor.copy_(tensor)
        if averaged:
            # lerp: ema + (1 - decay) * (current - ema) = decay * ema + (1 - decay) * current; exact for constants.
            torch._foreach_lerp_(averaged, current, 1.0 - self.decay)

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged module's state dict."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the average from `state_dict()`."""
        self.module.load_state_dict(state)
