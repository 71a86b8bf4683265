"""The global random generators' states (torch CPU and CUDA, Python, NumPy) as checkpoint-friendly tensors and lists."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The states of torch's (CPU and every CUDA device), Python's and NumPy's global generators."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy_state = np.random.get_state()
    rng["numpy"] = {"key": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                    "has_gauss": int(numpy_state[3]), "gauss": float(numpy_state[4])}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Restore what `capture_rng` returned (the CUDA states only on a machine with as many devices)."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "python" in rng:
        version, state, gauss = rng["python"]
        random.setstate((version, tuple(state), gauss))
    if "numpy" in rng:
        n = rng["numpy"]
        np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
