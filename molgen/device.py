"""Device selection shared by training, sampling and evaluation."""

from __future__ import annotations

import torch

from molgen.errors import MolgenError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; otherwise the named device, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise MolgenError(f"unknown device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MolgenError(f"device {name!r} asked for, but no CUDA device is available (use 'auto' or 'cpu')")
    return device
