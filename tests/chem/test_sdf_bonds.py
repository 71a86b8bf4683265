"""An SDF's own bonds: written with given bond orders and SD properties, read back, malformed bond lines named."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.chem.io import read_sdf, read_sdf_with_bonds, write_sdf
from molgen.errors import MoleculeFileError

ETHYNE = (np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [-1.06, 0.0, 0.0], [2.26, 0.0, 0.0]]), np.array([1, 1, 0, 0]))
ORDER = np.array([[0, 3, 1, 0], [3, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]])


def test_bond_orders_and_properties_round_trip(tmp_path):
    path = tmp_path / "m.sdf"
    odd = np.array([[0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    write_sdf(path, [ETHYNE, ETHYNE], properties=[{"valid": "true"}, {"smiles": ""}], orders=[ORDER, odd])
    molecules, orders = read_sdf_with_bonds(path)
    assert np.array_equal(orders[0], ORDER) and np.array_equal(orders[1], odd)
    assert np.allclose(molecules[1][0], ETHYNE[0]) and len(read_sdf(path)) == 2
    assert "> <valid>\ntrue\n\n$$$$" in path.read_text()
    with pytest.raises(ValueError, match="must be one line"):
        write_sdf(path, [ETHYNE], properties=[{"note": "two\nlines"}])


def test_a_bond_to_a_missing_atom_names_its_line(tmp_path):
    path = tmp_path / "m.sdf"
    write_sdf(path, [ETHYNE], orders=[ORDER])
    path.write_text(path.read_text().replace("  2  4  1", "  2  7  1"))
    with pytest.raises(MoleculeFileError, match=r"line 11: a bond between atoms 2 and 7 of 4"):
        read_sdf_with_bonds(path)
    assert len(read_sdf(path)) == 1  # without --bonds file the bond block is not read
