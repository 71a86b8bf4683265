"""EDM's distance-based bond orders and allowed valences for QM9 (Hoogeboom et al. 2022, qm9/bond_analyze.py).

A pair of atoms at distance d (in pm) is bonded with order
    1 if d < L1 + 10, raised to 2 if the pair has a double length and d < L2 + 5,
    raised to 3 if the pair also has a triple length and d < L3 + 3, else 0 (no bond),
with strict comparisons. An atom is stable iff the sum of its bond orders equals its allowed valence.

EDM computed distances in float32 (torch / numpy float32 positions); molgen uses float64 throughout, which
can only differ for a distance within a float32 rounding of a threshold (no bond order differs on 33,083
QM9 molecules: the test split and 20,000 training molecules).
"""

from __future__ import annotations

import numpy as np

from molgen.elements import ELEMENTS, TYPE_INDEX

PM_PER_ANGSTROM = 100.0

# Typical bond lengths in pm, keyed by the unordered pair of element symbols.
BOND_LENGTHS_SINGLE: dict[frozenset[str], int] = {
    frozenset(pair): length
    for pair, length in [
        (("H", "H"), 74), (("H", "C"), 109), (("H", "N"), 101), (("H", "O"), 96), (("H", "F"), 92),
        (("C", "C"), 154), (("C", "N"), 147), (("C", "O"), 143), (("C", "F"), 135),
        (("N", "N"), 145), (("N", "O"), 140), (("N", "F"), 136),
        (("O", "O"), 148), (("O", "F"), 142),
        (("F", "F"), 142),
    ]
}
BOND_LENGTHS_DOUBLE: dict[frozenset[str], int] = {
    frozenset(pair): length
    for pair, length in [
        (("C", "C"), 134), (("C", "N"), 129), (("C", "O"), 120),
        (("N", "N"), 125), (("N", "O"), 121),
        (("O", "O"), 121),
    ]
}
BOND_LENGTHS_TRIPLE: dict[frozenset[str], int] = {
    frozenset(pair): length
    for pair, length in [(("C", "C"), 120), (("C", "N"), 116), (("C", "O"), 113), (("N", "N"), 110)]
}

# Tolerances in pm added to the single, double and triple lengths (EDM's margin1, margin2, margin3).
MARGINS: tuple[int, int, int] = (10, 5, 3)

ALLOWED_VALENCE: dict[str, int] = {"H": 1, "C": 4, "N": 3, "O": 2, "F": 1}


def bond_order(symbol_i: str, symbol_j: str, distance: float) -> int:
    """EDM's bond order (0-3) between two atoms `distance` Å apart; the scalar reference rule."""
    d = PM_PER_ANGSTROM * distance  # pm
    pair = frozenset((symbol_i, symbol_j))
    margin_single, margin_double, margin_triple = MARGINS
    if not d < BOND_LENGTHS_SINGLE[pair] + margin_single:
        return 0
    if pair not in BOND_LENGTHS_DOUBLE or not d < BOND_LENGTHS_DOUBLE[pair] + margin_double:
        return 1
    if pair not in BOND_LENGTHS_TRIPLE or not d < BOND_LENGTHS_TRIPLE[pair] + margin_triple:
        return 2
    return 3


def _threshold_table(lengths: dict[frozenset[str], int], margin: int) -> np.ndarray:
    """[T, T] thresholds length + margin (pm) by atom-type index; -inf (never below it) for absent pairs."""
    table = np.full((len(ELEMENTS), len(ELEMENTS)), -np.inf)  # [T, T]
    for pair, length in lengths.items():
        symbols = sorted(pair)  # one symbol for a homonuclear pair
        a, b = TYPE_INDEX[symbols[0]], TYPE_INDEX[symbols[-1]]
        table[a, b] = table[b, a] = length + margin
    return table


_THRESHOLD_SINGLE = _threshold_table(BOND_LENGTHS_SINGLE, MARGINS[0])  # [T, T]
_THRESHOLD_DOUBLE = _threshold_table(BOND_LENGTHS_DOUBLE, MARGINS[1])  # [T, T]
_THRESHOLD_TRIPLE = _threshold_table(BOND_LENGTHS_TRIPLE, MARGINS[2])  # [T, T]
ALLOWED_VALENCE_BY_TYPE: np.ndarray = np.array([ALLOWED_VALENCE[s] for s in ELEMENTS])  # [T]


def pairwise_distances(positions: np.ndarray) -> np.ndarray:
    """Euclidean distances between all atoms in float64, as sqrt(dx² + dy² + dz²).

    Shapes: positions [N, 3] -> [N, N].
    """
    x = np.asarray(positions, dtype=np.float64)  # [N, 3]
    diff = x[:, None, :] - x[None, :, :]  # [N, N, 3]
    return np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2)  # [N, N]


def bond_order_matrix(positions: np.ndarray, atom_types: np.ndarray) -> np.ndarray:
    """EDM's bond orders between all pairs of a molecule: symmetric, zero diagonal.

    Shapes: positions [N, 3] (Å), atom_types [N] (int indices into ELEMENTS) -> [N, N] int.
    """
    types = np.asarray(atom_types, dtype=np.intp)  # [N]
    d = PM_PER_ANGSTROM * pairwise_distances(positions)  # [N, N] pm
    pair = (types[:, None], types[None, :])
    is_single = (d < _THRESHOLD_SINGLE[pair]).astype(np.int64)  # [N, N]
    is_double = (d < _THRESHOLD_DOUBLE[pair]).astype(np.int64)  # [N, N]
    is_triple = (d < _THRESHOLD_TRIPLE[pair]).astype(np.int64)  # [N, N]
    # Nested as in EDM: a double needs a single, a triple needs a double.
    order = is_single * (1 + is_double * (1 + is_triple))  # [N, N]
    np.fill_diagonal(order, 0)
    return order


def valence_stable(order: np.ndarray, atom_types: np.ndarray) -> np.ndarray:
    """Atoms whose bond-order sum equals the allowed valence of their element.

    Shapes: order [N, N], atom_types [N] -> [N] bool.
    """
    return order.sum(axis=1) == ALLOWED_VALENCE_BY_TYPE[np.asarray(atom_types, dtype=np.intp)]  # [N]


def fragment_count(order: np.ndarray) -> int:
    """The number of connected pieces of a molecule's bond graph (MiDi's connected components).

    Shapes: order [N, N] (bond orders, 0: no bond).
    """
    n = len(order)
    linked = (order > 0) | np.eye(n, dtype=bool)  # [N, N]
    labels = np.arange(n)  # [N]: each atom takes the smallest label among its neighbours until none changes
    while True:
        spread = np.where(linked, labels[None, :], n).min(axis=1, initial=n)  # [N]
        if np.array_equal(spread, labels):
            return len(np.unique(labels))
        labels = spread
