"""The six properties in EDM's units and EDM's normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.data.qm9 import PROPERTY_COLUMNS, edm_split
from molgen.property.names import PROPERTY_NAMES
from molgen.property.properties import PROPERTIES, Normalisation, get_property, property_values


def test_units_are_edms(qm9_arrays):
    train = qm9_arrays.properties[edm_split()["train"]]
    assert property_values(train, "gap").mean() == pytest.approx(6858, abs=1)  # meV, the number
    gap_hartree = train[:, PROPERTY_COLUMNS.index("HOMO_LUMO_gap_au")]
    np.testing.assert_allclose(property_values(train, "gap"), gap_hartree * 27211.4)
    lumo_minus_homo = property_values(train, "lumo") - property_values(train, "homo")
    np.testing.assert_allclose(property_values(train, "gap"), lumo_minus_homo, atol=2.8)  # QM9 rounds to 1e-4 Ha
    assert 60 < property_values(train, "alpha").mean() < 90  # Bohr^3
    assert 25 < property_values(train, "Cv").mean() < 40  # cal/(mol K)
    assert 2 < property_values(train, "mu").mean() < 4  # Debye
    assert {p.unit for p in PROPERTIES.values()} == {"Bohr^3", "meV", "Debye", "cal/(mol K)"}


def test_normalisation_is_mean_and_mean_absolute_deviation():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    norm = Normalisation.of(values)
    assert norm.mean == 4.0 and norm.mad == pytest.approx((3 + 2 + 1 + 6) / 4)
    np.testing.assert_allclose(norm.denormalise(norm.normalise(values)), values)


def test_unknown_property_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown property 'eps'; known properties: alpha, gap, homo, lumo, mu, Cv"):
        get_property("eps")


def test_the_import_free_names_are_the_properties():
    assert tuple(PROPERTIES) == PROPERTY_NAMES
