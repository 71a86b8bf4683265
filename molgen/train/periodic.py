"""What a run measures every few steps with the EMA weights: EDM's validation NLL on a fixed subset of the
validation split, and the stability, validity and uniqueness of sampled molecules (with RDKit)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, size_batches
from molgen.checkpoint import LoadedModel
from molgen.config import RunConfig, TrainConfig
from molgen.diffusion import LikelihoodError, NodeCountDistribution, SamplingError, evaluate_nll
from molgen.sampling import SampleSettings, generate

log = logging.getLogger(__name__)

NO_SCORES = {"atom_stable": math.nan, "mol_stable": math.nan, "validity": math.nan, "uniqueness": math.nan}


def validation_batches(valid_set, count: int, batch_size: int) -> list[MoleculeBatch]:
    """The fixed evaluation subset (the first `count` validation molecules), sorted by size and batched."""
    count = min(count, len(valid_set))
    return [valid_set.batch(chunk) for chunk in size_batches(valid_set.num_atoms[:count], batch_size)]


def sample_and_score(loaded: LoadedModel, train: TrainConfig, score: Callable) -> dict[str, Any]:
    """Sample train.sample_count molecules from the loaded model through the package's sampling driver
    (`molgen.sampling.generate`: seed train.sample_seed, batches of train.sample_batch_size molecules of similar
    size) and score them with `score` (molgen.chem.metrics.evaluate_molecules): the four scores and the number of
    molecules. SamplingError if sampling fails."""
    settings = SampleSettings(num_molecules=train.sample_count, sampler=train.sample_sampler, steps=train.sample_steps,
                              seed=train.sample_seed, batch_size=train.sample_batch_size)
    molecules = generate(loaded, settings, progress=False).molecules
    metrics = score(molecules)
    return {"atom_stable": metrics.atom_stable, "mol_stable": metrics.mol_stable, "validity": metrics.validity,
            "uniqueness": metrics.uniqueness, "num_molecules": len(molecules)}


class PeriodicChecks:
    """The validation NLL and sample metrics of a run, as records of its log (kind "eval" and "sample").

    Args:
        config: the run's configuration (train.eval_*, train.sample_* and data.batch_size).
        schedule: the noise schedule.
        valid_set: the validation split (None: no validation NLL).
        device: where to evaluate and sample.
    """

    def __init__(self, config: RunConfig, schedule, valid_set, device: torch.device) -> None:
        self.config, self.schedule, self.valid_set, self.device = config, schedule, valid_set, device
        self._batches: list[MoleculeBatch] | None = None
        self._rdkit_warned = False

    def validation_nll(self, module: torch.nn.Module, node_histogram: Tensor, step: int, epoch: int
                       ) -> dict[str, Any] | None:
        """The NLL of `module` on the fixed subset (1 pass, fixed seed; NaN with a warning if it fails); None
        without a validation set."""
        if self.valid_set is None:
            return None
        tc = self.config.train
        start = time.perf_counter()
        if self._batches is None:
            self._batches = validation_batches(self.valid_set, tc.eval_molecules, self.config.data.batch_size)
        try:
            estimate = evaluate_nll(module, self.schedule, self._batches, NodeCountDistribution(node_histogram),
                                    passes=1, generator=tc.eval_seed, progress=False, device=self.device)
            nll, se, count = estimate.mean, estimate.standard_error, estimate.num_molecules
        except LikelihoodError as err:
            log.warning("step %d: validation NLL failed: %s", step, err)
            nll, se, count = math.nan, math.nan, 0
        return {"kind": "eval", "step": step, "epoch": epoch, "val_nll": nll, "val_nll_se": se,
                "num_molecules": count, "seconds": time.perf_counter() - start}

    def sample_metrics(self, module: torch.nn.Module, node_histogram: Tensor, step: int, epoch: int
                       ) -> dict[str, Any] | None:
        """Sample molecules from `module` and score them (NaN scores with a warning if sampling fails); None (with
        a warning, once) when RDKit is missing."""
        try:
            from molgen.chem.metrics import evaluate_molecules
        except ImportError as err:
            if not self._rdkit_warned:
                log.warning("sample metrics skipped during training: RDKit is not available (%s)", err)
                self._rdkit_warned = True
            return None
        start = time.perf_counter()
        loaded = LoadedModel(model=module, config=self.config, schedule=self.schedule,
                             node_distribution=NodeCountDistribution(node_histogram).to(self.device), step=step)
        try:
            scores = sample_and_score(loaded, self.config.train, evaluate_molecules)
        except SamplingError as err:
            log.warning("step %d: sampling failed: %s", step, err)
            scores = NO_SCORES
        return {"kind": "sample", "step": step, "epoch": epoch, **scores, "seconds": time.perf_counter() - start}
