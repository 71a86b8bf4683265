"""EDM's evaluation protocol for a checkpoint: sample metrics with 95% confidence intervals and the test NLL."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from molgen.batch import size_batches
from molgen.checkpoint import LoadedModel
from molgen.diffusion import NLLEstimate, evaluate_nll

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial fraction (95% by default); (nan, nan) without trials."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def intervals(metrics) -> dict[str, tuple[float, float]]:
    """95% Wilson intervals of each scored fraction of a `Metrics`, from its counts.

    Atom stability pools atoms as EDM does; its interval treats atoms as independent, so it is too narrow
    where the atoms of one molecule succeed or fail together.
    """
    return {name: wilson_interval(numerator, denominator)
            for name, _, _, numerator, denominator in metrics.rows() if numerator is not None}


def test_split_nll(
    loaded: LoadedModel,
    cache_dir: str | Path | None = None,
    passes: int = 1,
    batch_size: int = 100,
    seed: int = 0,
    max_molecules: int | None = None,
    progress: bool = True,
) -> NLLEstimate:
    """EDM's NLL (nats per molecule) of the loaded weights on the QM9 test split (or its first max_molecules).

    Molecules are batched by size; DataError when the QM9 data is not installed.
    """
    from molgen.data.qm9 import QM9Dataset

    test = QM9Dataset("test", cache_dir)
    count = len(test) if max_molecules is None else min(max_molecules, len(test))
    batches = [test.batch(chunk) for chunk in size_batches(test.num_atoms[:count], batch_size)]
    with torch.inference_mode():
        return evaluate_nll(loaded.model, loaded.schedule, batches, loaded.node_distribution, passes=passes,
                            generator=seed, progress=progress, device=loaded.device)
