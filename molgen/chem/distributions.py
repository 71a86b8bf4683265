"""MiDi's distribution distances between generated molecules and a reference set (Vignac et al. 2023).

Follows cvignac/MiDi, midi/metrics/molecular_metrics.py (number_nodes_distance, atom_types_distance,
bond_types_distance, valency_distance, bond_length_distance, angle_distance) and midi/metrics/metrics_utils.py
(the reference histograms, wasserstein1d, total_variation1d):
- histograms: atom types; bond types over all atom pairs (no bond, single, double, triple); atom counts; valency
  (sum of bond orders) per element; bond lengths per bond type in 0.01 Å bins; bond angles at each atom with two
  or more bonds, per element of the central atom, in 0.1° bins;
- W1 of two histograms on regular bins = bin width × Σ |CDF difference|; an empty histogram counts as all zeros;
- "TV" is MiDi's Σ |p - q| (the L1 distance, twice the textbook total variation).
Per-type values are combined as MiDi does: valency W1 weighted by the reference's atom-type frequencies; angle
W1 weighted by atom-type frequency × the reference's fraction of that element's atoms with valency ≥ 2, divided
by the sum of those weights; bond-length W1 weighted by the reference's bond-type frequencies, here divided by
their sum (MiDi's code leaves out the division, so its figure is ours times the fraction of pairs bonded).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from molgen.atomic import atomic_write
from molgen.elements import ELEMENTS

BOND_TYPES = ("single", "double", "triple")
LENGTH_BINS_PER_ANGSTROM = 100  # MiDi rounds bond lengths to 0.01 Å
ANGLE_BINS_PER_DEGREE = 10  # and angles to 0.1°
REFERENCE_FILE = "qm9_test_statistics.json"


@dataclass
class Histograms:
    """Counts of a molecule set, the integer histograms that MiDi's distances compare."""

    atom_types: np.ndarray  # [T] atoms per element
    bond_types: np.ndarray  # [4] atom pairs with no bond, single, double, triple
    atom_counts: np.ndarray  # [N_max + 1] molecules per atom count
    valencies: np.ndarray  # [T, V_max + 1] atoms per element and bond-order sum
    bond_lengths: np.ndarray  # [3, L] bonds per type and 0.01 Å bin
    angles: np.ndarray  # [T, 1801] angles per central element and 0.1° bin

    def to_json(self) -> dict[str, list]:
        """The counts as nested lists of ints."""
        return {name: value.astype(int).tolist() for name, value in vars(self).items()}

    @classmethod
    def from_json(cls, payload: dict[str, list]) -> Histograms:
        """Histograms from `to_json`'s dict."""
        return cls(**{name: np.asarray(payload[name], dtype=np.int64) for name in cls.__dataclass_fields__})


def _bond_angle_bins(positions: np.ndarray, order: np.ndarray, atom_types: np.ndarray) -> tuple[np.ndarray, ...]:
    """(central atom type, 0.1° bin) of every angle j-a-k between two bonds of an atom a.

    Shapes: positions [N, 3], order [N, N], atom_types [N] -> [A], [A].
    """
    centres, bins = [], []
    for a in np.flatnonzero((order > 0).sum(axis=1) >= 2).tolist():
        bonds = positions[order[a] > 0] - positions[a]  # [K, 3]
        unit = bonds / np.maximum(np.linalg.norm(bonds, axis=1, keepdims=True), 1e-6)  # [K, 3]; 90° at a zero bond
        cosines = (unit @ unit.T)[np.triu_indices(len(unit), k=1)]  # [K(K-1)/2]
        degrees = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
        bins.append(np.rint(degrees * ANGLE_BINS_PER_DEGREE).astype(np.int64))
        centres.append(np.full(len(cosines), atom_types[a], dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(centres), np.concatenate(bins)) if bins else (empty, empty)


def _counts_2d(rows: np.ndarray, columns: np.ndarray, num_rows: int, min_columns: int) -> np.ndarray:
    """A [num_rows, C] count table of (row, column) pairs, C at least min_columns."""
    width = max(min_columns, int(columns.max()) + 1 if len(columns) else 0)
    table = np.zeros((num_rows, width), dtype=np.int64)
    np.add.at(table, (rows, columns), 1)
    return table


def histograms(molecules: Sequence[tuple[np.ndarray, np.ndarray]], orders: Sequence[np.ndarray]) -> Histograms:
    """The histograms of molecules (positions [N, 3] Å, atom types [N]) with bond orders [N, N] (0-3)."""
    num_types = len(ELEMENTS)
    types, valence_rows, valences, length_rows, lengths, angle_rows, angles, sizes = ([] for _ in range(8))
    bond_types = np.zeros(4, dtype=np.int64)
    for (positions, atom_types), order in zip(molecules, orders, strict=True):
        atom_types = np.asarray(atom_types, dtype=np.int64)  # [N]
        n = len(atom_types)
        i, j = np.triu_indices(n, k=1)  # [P], [P]
        pair_orders = order[i, j]  # [P]
        bond_types += np.bincount(pair_orders, minlength=4)[:4]
        bonded = pair_orders > 0
        distances = np.linalg.norm(positions[i[bonded]] - positions[j[bonded]], axis=1)  # [B]
        length_rows.append(pair_orders[bonded] - 1)
        lengths.append(np.rint(distances * LENGTH_BINS_PER_ANGSTROM).astype(np.int64))
        centre, angle = _bond_angle_bins(positions, order, atom_types)
        angle_rows.append(centre)
        angles.append(angle)
        types.append(atom_types)
        valence_rows.append(atom_types)
        valences.append(order.sum(axis=1).astype(np.int64))
        sizes.append(n)
    join = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    return Histograms(
        atom_types=np.bincount(join(types), minlength=num_types),
        bond_types=bond_types,
        atom_counts=np.bincount(np.asarray(sizes, dtype=np.int64), minlength=1),
        valencies=_counts_2d(join(valence_rows), join(valences), num_types, 1),
        bond_lengths=_counts_2d(join(length_rows), join(lengths), len(BOND_TYPES), 1),
        angles=_counts_2d(join(angle_rows), join(angles), num_types, 180 * ANGLE_BINS_PER_DEGREE + 1),
    )


def _normalised(counts: np.ndarray) -> np.ndarray:
    """Counts divided by their sum along the last axis (all zeros where the sum is 0, as MiDi does)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return counts / np.where(total == 0, 1.0, total)


def _padded(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p and q zero-padded along the last axis to the same length."""
    width = max(p.shape[-1], q.shape[-1])
    pad = (lambda x: np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])]))
    return pad(p), pad(q)


def wasserstein1(p: np.ndarray, q: np.ndarray, bin_width: float = 1.0) -> np.ndarray:
    """W1 between histograms on the same regular bins (from 0), per row: bin_width × Σ |CDF_p - CDF_q|.

    Shapes: p [..., B], q [..., B'] -> [...].
    """
    p, q = _padded(_normalised(p), _normalised(q))
    return bin_width * np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1)).sum(axis=-1)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """MiDi's total variation Σ |p - q| of two normalised histograms (the L1 distance)."""
    p, q = _padded(_normalised(p), _normalised(q))
    return float(np.abs(p - q).sum())


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Σ w v / Σ w (0.0 without weight)."""
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else 0.0


def distances(generated: Histograms, reference: Histograms) -> dict[str, float | dict[str, float]]:
    """MiDi's distances of generated to reference histograms, with the per-type values (see the module text)."""
    atom_frequency = _normalised(reference.atom_types)  # [T]
    valency = _normalised(reference.valencies)  # [T, V]
    angle_weight = atom_frequency * (1.0 - valency[:, :2].sum(axis=1))  # [T]: atoms with two or more bonds
    valency_w1 = wasserstein1(generated.valencies, reference.valencies)  # [T]
    length_w1 = wasserstein1(generated.bond_lengths, reference.bond_lengths, 1 / LENGTH_BINS_PER_ANGSTROM)  # [3]
    angle_w1 = wasserstein1(generated.angles, reference.angles, 1 / ANGLE_BINS_PER_DEGREE)  # [T]
    return {
        "atom_types_tv": total_variation(generated.atom_types, reference.atom_types),
        "bond_types_tv": total_variation(generated.bond_types, reference.bond_types),
        "atom_count_tv": total_variation(generated.atom_counts, reference.atom_counts),
        "atom_count_w1": float(wasserstein1(generated.atom_counts, reference.atom_counts)),
        "valency_w1": _weighted_mean(valency_w1, atom_frequency),
        "bond_lengths_w1": _weighted_mean(length_w1, _normalised(reference.bond_types)[1:]),
        "angles_w1": _weighted_mean(angle_w1, angle_weight),
        "valency_w1_per_element": dict(zip(ELEMENTS, valency_w1.tolist())),
        "bond_lengths_w1_per_type": dict(zip(BOND_TYPES, length_w1.tolist())),
        "angles_w1_per_element": dict(zip(ELEMENTS, angle_w1.tolist())),
    }


def reference_histograms() -> Histograms:
    """The QM9 test split's histograms (EDM's bonds), shipped with molgen (made by eval/qm9_reference_statistics.py)."""
    text = resources.files("molgen.chem").joinpath("data", REFERENCE_FILE).read_text()
    return Histograms.from_json(json.loads(text)["histograms"])


def write_reference(path: Path, reference: Histograms, source: str) -> None:
    """Write reference histograms as the package-data JSON, with a line saying where they come from."""
    with atomic_write(path) as handle:
        json.dump({"source": source, "histograms": reference.to_json()}, handle, separators=(",", ":"))
        handle.write("\n")
