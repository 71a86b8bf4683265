"""Sampling around a fixed fragment from a checkpoint: `molgen sample --fix FRAGMENT`, `sample_molecules(fixed=...)`.

Reads and checks the fragment (one molecule from an XYZ/SDF file, or positions and atom types) and calls the
method (the sampling driver draws the atom counts from the training histogram restricted to N > K),
`molgen.diffusion.inpainting.sample_inpainting` (EDM's ancestral sampler with replacement and RePaint round
trips; each molecule's copy of the fragment turned by a random rotation, since PONITA on a fixed orientation grid
is only approximately equivariant). Every request that cannot be sampled is one `MolgenError`; a fragment that can
be sampled but looks like a mistake (overlapping atoms, no heavy atom, no bonded pair) gets a one-line warning each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from molgen.diffusion.inpainting import Fragment, sample_inpainting
from molgen.elements import ELEMENTS, TYPE_INDEX
from molgen.errors import MolgenError

if TYPE_CHECKING:
    from molgen.batch import MoleculeBatch
    from molgen.diffusion.nodes import NodeCountDistribution
    from molgen.diffusion.steps import StepHook
    from molgen.sampling import SampleSettings
    from molgen.checkpoint import LoadedModel

log = logging.getLogger(__name__)

MIN_DISTANCE = 0.5  # Å: two fragment atoms closer than this overlap (QM9's shortest bond, H-H, is 0.74 Å)

FixedSource = str | Path | tuple[Sequence, Sequence]
"""A fragment file (.xyz or .sdf, one molecule), or (positions [K, 3] in Å, atom types [K] as indices or symbols)."""


def load_fragment(source: FixedSource) -> Fragment:
    """The fragment of a file or a (positions, atom types) pair; MolgenError for anything that is not one molecule."""
    if isinstance(source, str | Path):
        from molgen.chem.io import read_molecules

        molecules = read_molecules(source)  # MoleculeFileError (a MolgenError) names the file and line
        if len(molecules) != 1:
            raise MolgenError(f"the fragment file {source} holds {len(molecules)} molecules; give one")
        return Fragment(torch.as_tensor(molecules[0][0]), torch.as_tensor(molecules[0][1]))
    try:
        positions, atom_types = source
    except (TypeError, ValueError):
        raise MolgenError("fixed must be a fragment file or a (positions, atom types) pair") from None
    return Fragment(_positions(positions), _atom_types(atom_types, len(positions)))


def _positions(positions) -> torch.Tensor:
    """Finite fragment positions, float64 [K, 3] with K >= 1."""
    try:
        array = np.asarray(positions.cpu() if hasattr(positions, "cpu") else positions, dtype=np.float64)
    except (TypeError, ValueError):
        raise MolgenError("the fragment's positions are not a numeric [K, 3] array") from None
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise MolgenError(f"the fragment's positions must have shape [K, 3] with K >= 1, got {array.shape}")
    if not np.isfinite(array).all():
        raise MolgenError("the fragment's positions hold NaN or inf")
    return torch.from_numpy(array)


def _atom_types(atom_types, count: int) -> torch.Tensor:
    """Atom-type indices int64 [K] from indices or element symbols (H, C, N, O, F)."""
    values = list(atom_types.tolist() if hasattr(atom_types, "tolist") else atom_types)
    if len(values) != count:
        raise MolgenError(f"the fragment has {count} positions but {len(values)} atom types")
    indices = [TYPE_INDEX.get(v, -1) if isinstance(v, str) else v for v in values]
    if not all(isinstance(i, int | np.integer) and 0 <= i < len(ELEMENTS) for i in indices):
        raise MolgenError(f"unknown atom type in the fragment: {values}; molgen knows {', '.join(ELEMENTS)} "
                          f"(indices 0-{len(ELEMENTS) - 1})")
    return torch.tensor(indices, dtype=torch.int64)


def check_fragment(fragment: Fragment | None, settings: SampleSettings, nodes: NodeCountDistribution) -> None:
    """MolgenError unless the request can be sampled: the ancestral sampler, N > K, K below the largest molecule;
    then a logged warning per `fragment_warnings`."""
    if fragment is None:
        if settings.resample:
            raise MolgenError("--resample applies only to sampling around a fragment (--fix)")
        return
    k, largest = fragment.num_atoms, max(nodes.supported)
    if settings.sampler != "ancestral":
        raise MolgenError(f"a fixed fragment needs the ancestral sampler; the {settings.sampler} sampler is not "
                          "supported with --fix")
    if k >= largest:
        raise MolgenError(f"the fragment has {k} atoms, but the model's largest molecule has {largest}: no room "
                          "for new atoms")
    if settings.num_atoms is not None and settings.num_atoms <= k:
        raise MolgenError(f"--num-atoms {settings.num_atoms} must exceed the fragment's {k} atoms")
    if settings.num_atoms is not None and settings.num_atoms not in nodes.supported:
        raise MolgenError(f"cannot sample molecules of {settings.num_atoms} atoms: the model saw none in training")
    for warning in fragment_warnings(fragment):
        log.warning(warning)


def fragment_warnings(fragment: Fragment) -> list[str]:
    """One line per fault of a fragment that can be sampled but looks like a mistake: two atoms closer than
    MIN_DISTANCE, no heavy atom, or K > 1 atoms without a pair within bonding distance (EDM's single-bond length +
    margin, molgen.chem.bonds: the rule that bonds the sampled molecules; e.g. coordinates in pm, not Å)."""
    from molgen.chem.bonds import bond_order_matrix, pairwise_distances

    positions, types = fragment.positions.cpu().numpy(), fragment.atom_type.cpu().numpy()  # [K, 3], [K]
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


def sample_around(
    loaded: LoadedModel,
    fragment: Fragment,
    counts: torch.Tensor,
    settings: SampleSettings,
    generator: torch.Generator,
    callback: StepHook,
    on_round_trip: Callable[[], None] | None = None,
) -> MoleculeBatch:
    """One batch of molecules of counts [B] atoms around the fragment, in the fragment's frame."""
    return sample_inpainting(loaded.model, loaded.schedule, fragment, counts, steps=settings.resolved_steps,
                             resample=settings.resample, rotate=True, generator=generator, callback=callback,
                             on_round_trip=on_round_trip, device=loaded.device)
