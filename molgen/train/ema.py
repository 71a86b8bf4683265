"""Exponential moving average of a model's weights, as EDM keeps it (Hoogeboom et al. 2022, appendix).

ema <- decay * ema + (1 - decay) * current, after every optimizer step, for every parameter and floating buffer;
the average starts as an exact copy of the model and has no bias correction. Integer buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from molgen.checkpoint import decay_key


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


class EMASet:
    """EMAs of one model at several decays, each given per 64 molecules (molgen.train.schedule).

    Args:
        model: the model being trained; its current weights initialise every average.
        decays: decays per 64 molecules; the first is the primary EMA (evaluated during training, sampled from).
        batch_size: molecules per step, which turns each decay into its per-step decay.
    """

    def __init__(self, model: nn.Module, decays: tuple[float, ...], batch_size: int) -> None:
        from molgen.train.schedule import ema_decay_per_step

        self.decays = tuple(float(d) for d in decays)
        self.averages = {decay_key(d): EMA(model, ema_decay_per_step(d, batch_size)) for d in self.decays}

    @property
    def primary(self) -> EMA:
        """The EMA of the first decay."""
        return self.averages[decay_key(self.decays[0])]

    def update(self, model: nn.Module) -> None:
        """One step of every EMA."""
        for average in self.averages.values():
            average.update(model)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """{decay key: the averaged module's state dict}."""
        return {key: average.state_dict() for key, average in self.averages.items()}

    def load_state_dict(self, states: dict[str, dict[str, torch.Tensor]]) -> list[str]:
        """Restore the averages; one missing from `states` starts as a copy of the stored EMA of the nearest decay.

        Returns the keys that were initialised that way.
        """
        if not states:
            raise KeyError("no EMA state")
        stored = {float(key): state for key, state in states.items()}
        initialised = []
        for key, average in self.averages.items():
            if key in states:
                average.load_state_dict(states[key])
            else:
                nearest = min(stored, key=lambda d: abs(d - float(key)))
                average.load_state_dict(stored[nearest])
                initialised.append(key)
        return initialised
