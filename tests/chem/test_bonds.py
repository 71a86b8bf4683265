"""EDM's bond-order rule: the tables, the thresholds at their edges, and the vectorised matrix."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from molgen.chem.bonds import (
    ALLOWED_VALENCE,
    BOND_LENGTHS_DOUBLE,
    BOND_LENGTHS_SINGLE,
    BOND_LENGTHS_TRIPLE,
    MARGINS,
    bond_order,
    bond_order_matrix,
    pairwise_distances,
    valence_stable,
)
from molgen.elements import ELEMENTS

# The tables as written in docs/FACTS.md (pm), transcribed independently of bonds.py.
FACTS_SINGLE = "H-H 74, H-C 109, H-N 101, H-O 96, H-F 92, C-C 154, C-N 147, C-O 143, C-F 135, N-N 145, " \
               "N-O 140, N-F 136, O-O 148, O-F 142, F-F 142"
FACTS_DOUBLE = "C-C 134, C-N 129, C-O 120, N-N 125, N-O 121, O-O 121"
FACTS_TRIPLE = "C-C 120, C-N 116, C-O 113, N-N 110"
EPS_PM = 1e-6
PAIRS = list(itertools.combinations_with_replacement(ELEMENTS, 2))


def parse_table(text: str) -> dict[frozenset[str], int]:
    """'A-B 123, ...' -> {frozenset({A, B}): 123}."""
    entries = (item.split() for item in text.split(","))
    return {frozenset(pair.split("-")): int(length) for pair, length in entries}


def test_tables_match_facts():
    assert BOND_LENGTHS_SINGLE == parse_table(FACTS_SINGLE)
    assert BOND_LENGTHS_DOUBLE == parse_table(FACTS_DOUBLE)
    assert BOND_LENGTHS_TRIPLE == parse_table(FACTS_TRIPLE)
    assert MARGINS == (10, 5, 3)
    assert ALLOWED_VALENCE == {"H": 1, "C": 4, "N": 3, "O": 2, "F": 1}
    assert {frozenset(p) for p in PAIRS} == set(BOND_LENGTHS_SINGLE)


def thresholds(pair: frozenset[str]) -> list[tuple[float, int]]:
    """(threshold in pm, order just below it) for each threshold the pair has; just above gives order - 1."""
    tables = (BOND_LENGTHS_SINGLE, BOND_LENGTHS_DOUBLE, BOND_LENGTHS_TRIPLE)
    return [(table[pair] + margin, order)
            for order, (table, margin) in enumerate(zip(tables, MARGINS), start=1) if pair in table]


@pytest.mark.parametrize("a, b", PAIRS)
def test_orders_just_below_and_above_each_threshold(a, b):
    for threshold, order in thresholds(frozenset((a, b))):
        below, above = (threshold - EPS_PM) / 100, (threshold + EPS_PM) / 100
        assert bond_order(a, b, below) == bond_order(b, a, below) == order
        assert bond_order(a, b, above) == bond_order(b, a, above) == order - 1


def test_thresholds_are_strict():
    exact = [(a, b, threshold, order) for a, b in PAIRS for threshold, order in thresholds(frozenset((a, b)))
             if 100 * (threshold / 100) == threshold]
    assert len(exact) > 10
    for a, b, threshold, order in exact:
        assert bond_order(a, b, threshold / 100) == order - 1


def test_far_apart_and_close_orders():
    assert bond_order("C", "C", 5.0) == 0
    assert bond_order("C", "C", 1.0) == 3
    assert bond_order("C", "F", 1.0) == 1  # no double C-F length
    assert bond_order("N", "O", 1.0) == 2  # no triple N-O length
    assert bond_order("H", "H", 0.0) == 1


def test_matrix_agrees_with_scalar_rule_on_random_geometries():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 25))
        positions = rng.normal(size=(n, 3)) * rng.uniform(0.5, 2.0)  # [N, 3]
        types = rng.integers(0, len(ELEMENTS), size=n)  # [N]
        order = bond_order_matrix(positions, types)  # [N, N]
        distances = pairwise_distances(positions)  # [N, N]
        assert order.shape == (n, n)
        assert np.array_equal(order, order.T)
        assert not np.diag(order).any()
        for i, j in itertools.permutations(range(n), 2):
            assert order[i, j] == bond_order(ELEMENTS[types[i]], ELEMENTS[types[j]], distances[i, j])


def test_matrix_at_threshold_edges():
    for a, b in PAIRS:
        types = np.array([ELEMENTS.index(a), ELEMENTS.index(b)])
        for threshold, order in thresholds(frozenset((a, b))):
            for offset, expected in ((-EPS_PM, order), (EPS_PM, order - 1)):
                positions = np.array([[0.0, 0.0, 0.0], [(threshold + offset) / 100, 0.0, 0.0]])
                assert bond_order_matrix(positions, types)[0, 1] == expected


def test_pairwise_distances():
    positions = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)  # [7, 3]
    distances = pairwise_distances(positions)  # [7, 7]
    assert distances.dtype == np.float64
    expected = np.linalg.norm(positions[:, None].astype(np.float64) - positions[None], axis=-1)
    np.testing.assert_allclose(distances, expected, rtol=1e-12)


def test_valence_stable():
    types = np.array([3, 0, 0, 1])  # O, H, H, C
    order = np.array([[0, 1, 1, 2], [1, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0]])
    assert valence_stable(order, types).tolist() == [False, True, True, False]
