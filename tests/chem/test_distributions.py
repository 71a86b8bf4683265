"""MiDi's distribution distances: zero against itself, known values for hand-made shifted sets, MiDi's weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.distributions import distances, histograms, reference_histograms, total_variation, wasserstein1
from molgen.elements import TYPE_INDEX

H, C, N, O = (TYPE_INDEX[s] for s in "HCNO")


def hydrogen(length: float):
    return np.array([[0.0, 0.0, 0.0], [length, 0.0, 0.0]]), np.array([H, H])


def water(angle_degrees: float, length: float = 0.96):
    a = math.radians(angle_degrees)
    positions = np.array([[0.0, 0.0, 0.0], [length, 0.0, 0.0], [length * math.cos(a), length * math.sin(a), 0.0]])
    return positions, np.array([O, H, H])


def edm_histograms(molecules):
    return histograms(molecules, [bond_order_matrix(x, t) for x, t in molecules])


def test_every_distance_is_zero_for_the_reference_against_itself():
    reference = reference_histograms()
    values = distances(reference, reference)
    assert all(values[key] == 0.0 for key in values if not isinstance(values[key], dict))
    assert reference.atom_types.sum() > 200_000  # the whole test split, not a stub


def test_w1_and_tv_of_hand_made_histograms():
    assert wasserstein1(np.array([1, 0, 0]), np.array([0, 0, 1])) == 2.0  # all mass moved two bins
    assert wasserstein1(np.array([2, 2]), np.array([1, 1, 0, 0])) == 0.0  # normalised, padded
    assert wasserstein1(np.array([0, 1]), np.array([1, 0]), bin_width=0.01) == pytest.approx(0.01)
    assert total_variation(np.array([4, 0]), np.array([1, 1])) == 1.0  # MiDi's Σ|p - q|, twice the textbook TV
    assert total_variation(np.array([3, 1]), np.array([0, 0, 4])) == 2.0


def test_shifted_bond_lengths_give_the_shift():
    values = distances(edm_histograms([hydrogen(0.75)] * 3), edm_histograms([hydrogen(0.70)] * 5))
    assert values["bond_lengths_w1_per_type"]["single"] == pytest.approx(0.05)
    assert values["bond_lengths_w1"] == pytest.approx(0.05)  # the only bond type of the reference: weight 1
    assert values["atom_types_tv"] == values["atom_count_w1"] == values["valency_w1"] == 0.0


def test_shifted_angles_give_the_shift_weighted_by_centres_with_two_bonds():
    values = distances(edm_histograms([water(109.5)]), edm_histograms([water(104.5)]))
    assert values["angles_w1_per_element"]["O"] == pytest.approx(5.0)
    assert values["angles_w1"] == pytest.approx(5.0)  # hydrogens have one bond: MiDi gives them no weight
    assert values["bond_lengths_w1"] == 0.0


def test_atom_counts_types_and_valency():
    generated = edm_histograms([water(104.5), hydrogen(0.74)])  # atom counts 3 and 2; one O, four H
    reference = edm_histograms([water(104.5)])
    values = distances(generated, reference)
    assert values["atom_count_w1"] == pytest.approx(0.5) and values["atom_count_tv"] == pytest.approx(1.0)
    assert values["atom_types_tv"] == pytest.approx(2 * abs(0.8 - 2 / 3))
    assert values["valency_w1"] == 0.0  # every H has valency 1 and O 2 in both
    lone = edm_histograms([water(104.5), (np.array([[0.0, 0.0, 0.0]]), np.array([O]))])  # an O with no bonds
    values = distances(lone, reference)
    assert values["valency_w1_per_element"]["O"] == pytest.approx(1.0)  # half the O mass moved 2 -> 0
    assert values["valency_w1"] == pytest.approx(1 / 3)  # weighted by the reference's O frequency, 1/3


@pytest.mark.slow
def test_the_shipped_histograms_are_the_test_splits(qm9_cache_dir):
    from molgen.data.qm9 import QM9Dataset

    test = QM9Dataset("test", qm9_cache_dir).molecules()
    computed, shipped = edm_histograms(test), reference_histograms()
    for name in vars(shipped):
        assert np.array_equal(getattr(computed, name), getattr(shipped, name)), name
