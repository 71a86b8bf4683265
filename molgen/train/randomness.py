"""The random-number scheme of training: every draw comes from the run seed and a position, never from history.

- the initial weights: torch's global generator seeded with the run seed while the model is built (`seeded`);
- epoch e's batch order: `molgen.data.sampler.epoch_seed(seed, e)`;
- each molecule's diffusion step t and noise at a step: a generator seeded by (seed, step, dataset index)
  (`per_sample_noise`), so a batch's randomness depends neither on the batch nor on the process that takes it;
- each molecule's random rotation at a step (with data.random_rotation): a second generator seeded by the same
  position in its own stream (`per_sample_rotations`), so turning the option on leaves every t and noise as it was;
- with importance-sampled t (train.time_sampling), each molecule's uniform u at a step: a third stream
  (`per_sample_uniforms`), mapped to t by the step's proposal (molgen.train.timesampling);
- the validation NLL and the in-training samples: their own fixed seeds (train.eval_seed, train.sample_seed).

Checkpoints also keep the states of the global generators (torch CPU and CUDA, Python, NumPy: `capture_rng`,
`restore_rng`), so that code drawing from them resumes where it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from molgen.diffusion.process import STATE_DIM
from molgen.geometry.rotations import random_rotations

_MASK64 = (1 << 64) - 1
Built = TypeVar("Built")


def seeded(seed: int, build: Callable[[], Built]) -> Built:
    """`build()` with torch's global CPU generator seeded with `seed`, and that generator as it was afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _mix64(z: int) -> int:
    """SplitMix64's finaliser: a bijective 64-bit mix."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def sample_seed(seed: int, step: int, index: int) -> int:
    """The 63-bit seed of one molecule's randomness at one step: a hash of (run seed, step, dataset index)."""
    return _mix64(_mix64(_mix64(seed & _MASK64) ^ (step & _MASK64)) ^ (index & _MASK64)) >> 1


def per_sample_noise(
    seed: int, step: int, indices: Sequence[int], num_atoms: Sequence[int], timesteps: int,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Each molecule's t ~ U{0..T} and its noise eps ~ N(0, I) [N, 9], from its own generator.

    The generator of molecule `index` at `step` is seeded with `sample_seed(seed, step, index)` and draws t, then
    eps, so a molecule's randomness depends on nothing else (not the batch, its position in it, or the process).
    Returns t_int int64 [B] and eps [M, 9] on the CPU (the positions' part is not yet centroid-free).
    """
    generator = torch.Generator()
    steps, noises = [], []
    for index, n in zip(indices, num_atoms):
        generator.manual_seed(sample_seed(seed, step, index))
        steps.append(torch.randint(0, timesteps + 1, (1,), generator=generator))  # [1]
        noises.append(torch.randn(n, STATE_DIM, generator=generator, dtype=dtype))  # [N, 9]
    return torch.cat(steps), torch.cat(noises)  # [B], [M, 9]


ROTATION_STREAM = 0x5EED_0F_0A_7E  # tells the rotations' seeds apart from those of t and the noise


def per_sample_rotations(seed: int, step: int, indices: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """Each molecule's rotation at `step`, uniform on SO(3), [B, 3, 3] on the CPU: molecule `index` draws a Gaussian
    quaternion from a generator seeded with `sample_seed(seed, step, index) ^ ROTATION_STREAM`."""
    generator = torch.Generator()
    rotations = []
    for index in indices:
        generator.manual_seed(sample_seed(seed, step, index) ^ ROTATION_STREAM)
        rotations.append(random_rotations(1, generator, dtype, "cpu"))  # [1, 3, 3]
    return torch.cat(rotations)  # [B, 3, 3]


TIME_STREAM = 0x7_1E_57E9  # tells the seeds of importance sampling's uniforms apart from the others


def per_sample_uniforms(seed: int, step: int, indices: Sequence[int]) -> Tensor:
    """Each molecule's u ~ U[0, 1) at `step` [B] float64 on the CPU, for importance-sampled t
    (molgen.train.timesampling): molecule `index` draws from a generator seeded with
    `sample_seed(seed, step, index) ^ TIME_STREAM`, so its t ~ U{0..T}, noise and rotation stay as they were."""
    generator = torch.Generator()
    uniforms = []
    for index in indices:
        generator.manual_seed(sample_seed(seed, step, index) ^ TIME_STREAM)
        uniforms.append(torch.rand(1, generator=generator, dtype=torch.float64))  # [1]
    return torch.cat(uniforms)  # [B]


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
