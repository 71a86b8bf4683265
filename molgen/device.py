"""Device selection shared by training, sampling and evaluation: molgen runs on the CPU and on CUDA GPUs."""

from __future__ import annotations

import torch

from molgen.errors import MolgenError


def available_devices() -> list[str]:
    """The devices molgen can use on this machine: 'cpu', then 'cuda:0', 'cuda:1', ... for each CUDA GPU."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu", *(f"cuda:{index}" for index in range(gpus))]


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; otherwise the named device if it is one of
    `available_devices()` ('cuda' is 'cuda:0', 'cpu:N' the CPU), else one MolgenError naming those."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = available_devices()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is not None and (device.type == "cpu" or f"{device.type}:{device.index or 0}" in available):
        return device
    raise MolgenError(not_available(name))


def not_available(name: object) -> str:
    """The one line for a device that molgen cannot use here, naming the ones it can."""
    return (f"device {name!r} is not available here; the devices here are: auto, {', '.join(available_devices())} "
            "(molgen runs on CPUs and CUDA GPUs)")
