"""How to sample (`SampleSettings`) and the check of a request, free of torch: the command line refuses impossible
options and fragments with one clear `MolgenError` before it loads torch or a checkpoint.

The checks read the sampler table (`molgen.choices.SAMPLER_TABLE`): which samplers take churn or a fixed fragment,
and which take at most T steps. A fragment (positions [K, 3] Å, atom types [K], as `molgen.chem.io.read_fragment`
gives it) that can be sampled but looks like a mistake gets one logged warning per fault.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from molgen.choices import DEFAULT_SAMPLER, MAX_RESAMPLE, SAMPLER_TABLE, SAMPLERS, precision_problem, seed_problem
from molgen.elements import ELEMENTS
from molgen.errors import MolgenError
from molgen.property.targets import check_targets, guide_path

if TYPE_CHECKING:
    from molgen.batch import Molecule

log = logging.getLogger(__name__)

MIN_DISTANCE = 0.5  # Å: two fragment atoms closer than this overlap (QM9's shortest bond, H-H, is 0.74 Å)


def samplers_with(capability: str) -> str:
    """The samplers whose table entry has `capability` (a `SamplerSpec` flag), as words ("heun", "a or b")."""
    return " or ".join(name for name, spec in SAMPLER_TABLE.items() if getattr(spec, capability))


@dataclass(frozen=True)
class SampleSettings:
    """How to sample; `check()` turns impossible values into one clear MolgenError.

    steps None means the sampler's default (`SAMPLER_TABLE[sampler].default_steps`); num_atoms None draws counts
    from p(N); churn > 0 adds Karras et al.'s stochastic churn (S_churn over the whole grid) to the samplers that
    take it; resample: RePaint round trips per step around a fixed fragment; targets: (property, value) pairs to guide
    toward (EEGSDE's energy guidance, `molgen.property`) with scale `guidance` (None: the default) and the guidance
    term's RMS per molecule at most `guidance_bound` (None: unbounded), their guide regressors read from the folder
    `regressors` (None: `molgen.property.targets.regressor_folder`).
    """

    num_molecules: int = 100
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    seed: int = 0
    num_atoms: int | None = None
    batch_size: int = 100
    device: str = "auto"
    use_ema: bool = True
    precision: str = "auto"
    threads: int | None = None
    resample: int = 0
    churn: float = 0.0
    targets: tuple[tuple[str, float], ...] = ()
    guidance: float | None = None
    regressors: str | None = None
    guidance_bound: float | None = None

    @property
    def resolved_steps(self) -> int:
        return SAMPLER_TABLE[self.sampler].default_steps if self.steps is None else self.steps

    def check(self, timesteps: int | None = None) -> None:
        """MolgenError for a count < 1, an unknown sampler, too few or too many steps (with a model's T =
        `timesteps`) or round trips, churn for a sampler without it, a bad seed, precision or thread count."""
        for name, value in (("number of molecules", self.num_molecules), ("batch size", self.batch_size),
                            ("number of steps", self.steps), ("atom count", self.num_atoms),
                            ("thread count", self.threads)):
            if value is not None and value < 1:
                raise MolgenError(f"the {name} must be at least 1, got {value}")
        self._check_sampler(timesteps)
        if not 0 <= self.resample <= MAX_RESAMPLE:
            raise MolgenError(f"--resample must lie in 0..{MAX_RESAMPLE} round trips per step, got {self.resample}")
        if seed_problem(self.seed) is not None:
            raise MolgenError(seed_problem(self.seed))
        if precision_problem(self.precision) is not None:
            raise MolgenError(precision_problem(self.precision))
        self._check_targets()

    def _check_targets(self) -> None:
        """Property targets (`molgen.property.targets.check_targets`) only on a sampler that takes guidance."""
        check_targets(self.targets, self.guidance, self.guidance_bound)
        for name, _ in self.targets:
            guide_path(name, self.regressors)  # the regressor file exists
        if self.targets and not SAMPLER_TABLE[self.sampler].guidance:
            raise MolgenError(f"property targets need the {samplers_with('guidance')} sampler; the {self.sampler} "
                              "sampler is not supported with --target")

    def _check_sampler(self, timesteps: int | None) -> None:
        """The sampler exists, takes the steps asked for (at most T where its table says so) and the churn."""
        if self.sampler not in SAMPLER_TABLE:
            raise MolgenError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        spec = SAMPLER_TABLE[self.sampler]
        most = spec.max_steps(timesteps) if timesteps is not None else None
        if most is not None and self.resolved_steps > most:
            raise MolgenError(f"the {self.sampler} sampler takes at most T = {most} steps, got {self.resolved_steps}")
        if not (math.isfinite(self.churn) and self.churn >= 0):
            raise MolgenError(f"churn must be a finite number >= 0, got {self.churn}")
        if self.churn and not spec.churn:
            raise MolgenError(f"churn applies to the {samplers_with('churn')} sampler only, not {self.sampler}")

    def check_fragment(self, fragment: Molecule | None, supported_counts: Sequence[int] | None = None) -> None:
        """MolgenError unless the request around `fragment` can be sampled: a sampler that takes a fixed fragment,
        N > K and, with the model's atom counts, K below the largest and N among them; --resample only with a
        fragment. Then one logged warning per `fragment_warnings`."""
        if fragment is None:
            if self.resample:
                raise MolgenError("--resample applies only to sampling around a fragment (--fix)")
            return
        k = len(fragment[1])
        if not SAMPLER_TABLE[self.sampler].fix:
            raise MolgenError(f"a fixed fragment needs the {samplers_with('fix')} sampler; the {self.sampler} sampler "
                              "is not supported with --fix")
        if supported_counts is not None and k >= max(supported_counts):
            raise MolgenError(f"the fragment has {k} atoms, but the model's largest molecule has "
                              f"{max(supported_counts)}: no room for new atoms")
        if self.num_atoms is not None and self.num_atoms <= k:
            raise MolgenError(f"--num-atoms {self.num_atoms} must exceed the fragment's {k} atoms")
        if self.num_atoms is not None and supported_counts is not None and self.num_atoms not in supported_counts:
            raise MolgenError(f"cannot sample molecules of {self.num_atoms} atoms: the model saw none in training")
        for warning in fragment_warnings(fragment):
            log.warning(warning)


def fragment_warnings(fragment: Molecule) -> list[str]:
    """One line per fault of a fragment that can be sampled but looks like a mistake: two atoms closer than
    MIN_DISTANCE, no heavy atom, or K > 1 atoms without a pair within bonding distance (EDM's single-bond length +
    margin, molgen.chem.bonds: the rule that bonds the sampled molecules; e.g. coordinates in pm, not Å)."""
    from molgen.chem.bonds import bond_order_matrix, pairwise_distances

    positions, types = fragment  # [K, 3], [K]
    symbols, k, warnings = [ELEMENTS[t] for t in types], len(types), []
    distance = pairwise_distances(positions) + np.diag(np.full(k, np.inf))  # [K, K], inf on the diagonal
    i, j = np.unravel_index(np.argmin(distance), distance.shape)
    closest = float(distance[i, j])
    if closest < MIN_DISTANCE:
        overlaps = int((distance < MIN_DISTANCE).sum()) // 2
        warnings.append(f"the fragment's atoms {i + 1} ({symbols[i]}) and {j + 1} ({symbols[j]}) are {closest:.3f} Å "
                        f"apart, closer than {MIN_DISTANCE} Å: overlapping atoms"
                        + (f" ({overlaps} such pairs)" if overlaps > 1 else ""))
    if all(symbol == "H" for symbol in symbols):
        warnings.append("the fragment has no heavy atom, only hydrogen")
    if k > 1 and not bond_order_matrix(positions, types).any():
        warnings.append(f"no two of the fragment's {k} atoms are within bonding distance (the closest are "
                        f"{closest:.3g} Å apart): are its coordinates in Å?")
    return warnings
