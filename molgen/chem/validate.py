"""Molecules handed in by callers (to write, or to sample around), checked into molgen's arrays.

A molecule is a pair (positions float64 [N, 3] in Å, atom_types int64 [N] indices into ELEMENTS); callers may give
numpy arrays, torch tensors or lists, and atom types also as element symbols. Every problem is one ValueError
naming the molecule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from molgen.batch import Molecule
from molgen.elements import ELEMENTS, TYPE_INDEX

_KNOWN_ELEMENTS = ", ".join(ELEMENTS)


def to_numpy(values: Any) -> Any:
    """A torch tensor as a CPU numpy array; anything else unchanged (for np.asarray)."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else values


def checked_molecule(label: str, molecule: Any) -> Molecule:
    """A (positions, atom types) pair as (float64 [N, 3], int64 [N]) arrays, or ValueError naming `label`."""
    try:
        positions, atom_types = molecule
    except (TypeError, ValueError):
        raise ValueError(f"{label} is not a (positions, atom_types) pair") from None
    try:
        positions = np.asarray(to_numpy(positions), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{label}: positions are not a numeric [N, 3] array") from None
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] < 1:
        raise ValueError(f"{label}: positions must have shape [N, 3] with N >= 1, got {positions.shape}")
    if not np.isfinite(positions).all():
        raise ValueError(f"{label}: positions hold NaN or inf")
    atom_types = _type_indices(label, np.asarray(to_numpy(atom_types)))
    if atom_types.shape != positions.shape[:1]:
        raise ValueError(f"{label}: atom_types must have shape [{len(positions)}], got {atom_types.shape}")
    if atom_types.dtype.kind not in "iu":
        raise ValueError(f"{label}: atom_types must be integers, got dtype {atom_types.dtype}")
    if atom_types.min() < 0 or atom_types.max() >= len(ELEMENTS):
        raise ValueError(f"{label}: atom_types must lie in 0..{len(ELEMENTS) - 1} ({_KNOWN_ELEMENTS})")
    return positions, atom_types.astype(np.int64)


def _type_indices(label: str, atom_types: np.ndarray) -> np.ndarray:
    """Element symbols as atom-type indices (other arrays unchanged); ValueError for an unknown symbol."""
    if atom_types.dtype.kind != "U":
        return atom_types
    unknown = sorted({str(symbol) for symbol in atom_types.flat} - set(TYPE_INDEX))
    if unknown:
        raise ValueError(f"{label}: unknown element {unknown[0]!r}; molgen knows {_KNOWN_ELEMENTS}")
    return np.vectorize(TYPE_INDEX.__getitem__, otypes=[np.int64])(atom_types)


def check_labels(labels: Sequence[str] | None, count: int, what: str) -> list[str]:
    """One single-line label per molecule: the given ones, or 'molecule i' by default."""
    if labels is None:
        return [f"molecule {i}" for i in range(count)]
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"{what}s: got {len(labels)} for {count} molecules")
    for i, label in enumerate(labels):
        if "\n" in label or "\r" in label:
            raise ValueError(f"{what} {i} spans more than one line: {label!r}")
    return labels


def check_molecules(molecules: Iterable[Any]) -> list[Any]:
    """The molecules to write as a list, which must not be empty (an empty file does not read back)."""
    molecules = list(molecules)
    if not molecules:
        raise ValueError("no molecules to write")
    return molecules
