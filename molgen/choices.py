"""The named choices and ranges of sampling and training options, free of torch: the command line lists them in
its help (`molgen --help` imports no torch), and the modules that use them import them from here.

SAMPLERS and DEFAULT_STEPS: `molgen.diffusion.samplers`; PRECISIONS: `molgen.precision`; MAX_RESAMPLE: the most
RePaint round trips per step `SampleSettings` takes; MAX_SEED: the largest seed `torch.Generator.manual_seed` takes
(seeds run from 0 to 2^64 - 1).
"""

from __future__ import annotations

from typing import Literal

SamplerName = Literal["ancestral", "heun"]
SAMPLERS: tuple[SamplerName, ...] = ("ancestral", "heun")
# The default: the best molecule stability measured on the shipped checkpoint (eval/qm9_checkpoint_eval.md): EDM's
# ancestral sampler on 100 strided steps beat ancestral 50 and Heun 20 and 40 (Heun 40 with churn 5 came close).
DEFAULT_SAMPLER: SamplerName = "ancestral"
DEFAULT_STEPS: dict[str, int] = {"ancestral": 100, "heun": 20}  # EDM's protocol: ancestral with all T = 1000 steps

PRECISIONS = ("auto", "fp32", "bf16")

MAX_RESAMPLE = 100  # RePaint round trips per step around a fragment, at most (R + 1 network calls per step)

MAX_SEED = 2**64 - 1


def seed_problem(seed: object) -> str | None:
    """Why `seed` is no seed (an integer from 0 to 2^64 - 1), in words; None when it is one."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"a seed must be an integer from 0 to 2**64 - 1, got {seed!r}"
    if not 0 <= seed <= MAX_SEED:
        return f"a seed must lie in 0 ... 2**64 - 1 = {MAX_SEED}, got {seed}"
    return None
