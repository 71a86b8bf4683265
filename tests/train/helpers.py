"""A tiny PONITA, run configs around it, a toy data set and state comparisons for the trainer tests."""

from __future__ import annotations

from typing import Any

import torch

from molgen.batch import MoleculeBatch
from molgen.config import RunConfig

TINY_PONITA = {"orientations": 4, "hidden": 8, "layers": 1, "basis_dim": 4, "channels_per_kernel": 4,
               "basis_hidden": 4, "degree": 2}


def tiny_config(run_dir, **train: Any) -> RunConfig:
    """A run of the tiny PONITA on the first 64 training molecules in batches of 16, no evaluations."""
    values = {"seed": 0, "lr": 1e-3, "ema_decays": [0.9], "max_steps": 6, "checkpoint_every": 1000, "log_every": 1,
              "eval_every": 0, "sample_every": 0, "device": "cpu", "threads": 1, "precision": "fp32",
              **train}
    return RunConfig.from_dict({
        "data": {"batch_size": 16, "max_train_molecules": 64},
        "model": {"name": "ponita", "config": dict(TINY_PONITA)},
        "train": values,
        "run_dir": str(run_dir),
    })


class ToyMolecules:
    """Random molecules of 3 to 6 atoms (a data set without QM9, for the format-0 checkpoint script)."""

    def __init__(self, count: int = 32, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.num_atoms = torch.randint(3, 7, (count,), generator=generator)  # [D]
        self.ptr = torch.cat([torch.zeros(1, dtype=torch.int64), self.num_atoms.cumsum(0)])  # [D + 1]
        total = int(self.num_atoms.sum())
        self.positions = torch.randn(total, 3, generator=generator)  # [M, 3]
        self.atom_type = torch.randint(0, 5, (total,), generator=generator)  # [M]

    def __len__(self) -> int:
        return len(self.num_atoms)

    def batch(self, indices) -> MoleculeBatch:
        indices = torch.as_tensor(indices).reshape(-1).tolist()
        x = torch.cat([self.positions[self.ptr[i] : self.ptr[i + 1]] for i in indices])
        types = torch.cat([self.atom_type[self.ptr[i] : self.ptr[i + 1]] for i in indices])
        return MoleculeBatch.from_arrays(x, types, self.num_atoms[indices])


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Nested dicts/lists/tensors equal bitwise (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
