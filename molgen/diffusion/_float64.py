"""A module base whose floating buffers stay float64 when the module is cast (tables of the schedule and histogram)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class Float64Buffers(nn.Module):
    """Buffers follow `.to(device)` but ignore dtype casts (`.float()`, `.half()`, `.to(torch.bfloat16)`).

    The noise schedule and the VLB need float64 (gamma differences of 1e-3 next to |gamma| ~ 11); a model wrapper
    that casts everything to bf16 must not silently round them. Subclasses hold buffers only, no parameters.
    """

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Float64Buffers:
        for name, buffer in self._buffers.items():
            if buffer is None:
                continue
            moved = fn(buffer)
            self._buffers[name] = buffer.to(moved.device, torch.float64) if buffer.is_floating_point() else moved
        return self
