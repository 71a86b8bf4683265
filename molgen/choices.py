"""The named choices and ranges of sampling and training options, free of torch: the command line lists them in
its help and refuses bad ones before torch is loaded (`molgen --help` imports no torch), and the modules that use
them read them from here.

SAMPLER_TABLE: every sampler by name, with where its function and time grid live, its default steps and what it
supports; adding a sampler is one file under `molgen/diffusion/` plus one entry here. PRECISIONS: `molgen.precision`;
MAX_RESAMPLE: the most RePaint round trips per step `SampleSettings` takes; MAX_SEED: the largest seed
`torch.Generator.manual_seed` takes (seeds run from 0 to 2^64 - 1); LOSS_WEIGHTINGS and TIME_SAMPLINGS: the training
loss's weightings and draws of t.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: its function and time grid (as "module:name", imported on first use), defaults and capabilities.

    function: sample_x(model, start, grid, generator, callback, modifiers, **options) -> MoleculeBatch, where model is
        a `molgen.diffusion.steps.EpsModel`, start a `SamplerState`, grid what `grid` makes, callback a `StepHook`
        and modifiers a sequence of `EpsModifier`; options: `churn` where the sampler takes it.
    grid: grid(schedule, steps) -> the sampler's time grid (a 1-D tensor of steps + 1 points).
    """

    function: str
    grid: str
    default_steps: int
    calls_per_step: int  # network evaluations per step; EDM's final step adds one
    summary: str  # one line for --help
    churn: bool = False  # Karras et al.'s stochastic churn (--churn)
    fix: bool = False  # sampling around a fixed fragment (--fix): inpainting is defined on this sampler's states
    eps_modifiers: bool = True  # applies ε-modifiers to the network's prediction before every step
    at_most_T: bool = False  # takes at most the schedule's T steps
    guidance: bool = False  # energy guidance toward property targets (--target): defined on this sampler's step

    def network_calls(self, steps: int) -> int:
        """Network evaluations of one batch: calls_per_step per step plus EDM's final step."""
        return self.calls_per_step * steps + 1

    def max_steps(self, timesteps: int) -> int | None:
        """The most steps on a schedule of T = timesteps (None: no limit)."""
        return timesteps if self.at_most_T else None

    def load(self) -> Callable:
        """The sampler function (imports torch)."""
        return _load(self.function)

    def load_grid(self) -> Callable:
        """The grid function (imports torch)."""
        return _load(self.grid)


def _load(path: str) -> Callable:
    """The object that "module:name" names."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


SAMPLER_TABLE: dict[str, SamplerSpec] = {
    "ancestral": SamplerSpec(
        "molgen.diffusion.samplers:sample_ancestral", "molgen.diffusion.samplers:strided_grid", 100, 1,
        "EDM's sampler (--steps 1000 is EDM's protocol, fewer steps stride its grid)", fix=True, at_most_T=True,
        guidance=True),
    "heun": SamplerSpec(
        "molgen.diffusion.heun:sample_heun", "molgen.diffusion.heun:karras_grid", 20, 2,
        "Heun's method on the probability-flow ODE, Karras grid", churn=True),
    "dpmpp2m": SamplerSpec(
        "molgen.diffusion.dpmpp2m:sample_dpmpp2m", "molgen.diffusion.dpmpp2m:logsnr_grid", 50, 1,
        "DPM-Solver++(2M) on the probability-flow ODE, logSNR-uniform grid to t = 1/T"),
}
SAMPLERS: tuple[str, ...] = tuple(SAMPLER_TABLE)
# The default: the best molecule stability measured on the shipped checkpoint (eval/qm9_checkpoint_eval.md): EDM's
# ancestral sampler on 100 strided steps beat ancestral 50 and Heun 20 and 40 (Heun 40 with churn 5 came close),
# and DPM-Solver++(2M) at 20, 50 and 100 steps (eval/sampler_comparison.md).
DEFAULT_SAMPLER = "ancestral"
DEFAULT_STEPS: dict[str, int] = {name: spec.default_steps for name, spec in SAMPLER_TABLE.items()}


def sampler_spec(name: str) -> SamplerSpec:
    """The table entry of a sampler; ValueError naming the samplers for an unknown name."""
    if name not in SAMPLER_TABLE:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLER_TABLE[name]


PRECISIONS = ("auto", "fp32", "bf16")


def precision_problem(name: object) -> str | None:
    """Why `name` is no precision (one of PRECISIONS), in words; None when it is one."""
    return None if name in PRECISIONS else f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}"


MAX_RESAMPLE = 100  # RePaint round trips per step around a fragment, at most (R + 1 network calls per step)

MAX_SEED = 2**64 - 1

LOSS_WEIGHTINGS = ("edm", "min_snr", "clamped_snr")  # train.loss_weighting: molgen.diffusion.weighting
TIME_SAMPLINGS = ("uniform", "importance")  # train.time_sampling: molgen.train.timesampling


def seed_problem(seed: object) -> str | None:
    """Why `seed` is no seed (an integer from 0 to 2^64 - 1), in words; None when it is one."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"a seed must be an integer from 0 to 2**64 - 1, got {seed!r}"
    if not 0 <= seed <= MAX_SEED:
        return f"a seed must lie in 0 ... 2**64 - 1 = {MAX_SEED}, got {seed}"
    return None
