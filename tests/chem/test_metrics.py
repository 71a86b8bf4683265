"""EDM's sample metrics on hand-made molecules with known answers, bad inputs and random point clouds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molgen.chem.metrics import Metrics, check_molecule, evaluate_molecules, training_smiles
from molgen.elements import TYPE_INDEX

H, C, N, O, F = (TYPE_INDEX[s] for s in "HCNOF")
C_H = 1.09  # Å, below the 1.19 Å single-bond threshold


def types(*indices: int) -> np.ndarray:
    """Atom-type array [N]."""
    return np.array(indices)


def on_x_axis(*xs: float) -> np.ndarray:
    """Positions [N, 3] along the x axis."""
    return np.array([[x, 0.0, 0.0] for x in xs])


def water() -> tuple[np.ndarray, np.ndarray]:
    """O-H 0.96 Å, angle 104.5 degrees."""
    angle = np.deg2rad(104.5)
    positions = np.array([[0, 0, 0], [0.96, 0, 0], [0.96 * np.cos(angle), 0.96 * np.sin(angle), 0]])
    return positions, types(O, H, H)


def methane() -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedral C-H 1.09 Å."""
    tetrahedron = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)  # [4, 3]
    return np.vstack([np.zeros(3), C_H * tetrahedron]), types(C, H, H, H, H)


def ethylene() -> tuple[np.ndarray, np.ndarray]:
    """C=C 1.34 Å, C-H 1.09 Å at 120 degrees."""
    hydrogens = [[sx * (0.67 + C_H / 2), sy * C_H * np.sqrt(3) / 2, 0] for sx in (-1, 1) for sy in (-1, 1)]
    return np.vstack([[[-0.67, 0, 0], [0.67, 0, 0]], hydrogens]), types(C, C, H, H, H, H)


def ring_benzene(short: float, long: float) -> tuple[np.ndarray, np.ndarray]:
    """Hexagon with 120-degree angles and alternating C-C lengths, C-H 1.09 Å pointing outwards."""
    steps = [(short if k % 2 == 0 else long) * np.array([np.cos(np.pi * k / 3), np.sin(np.pi * k / 3)])
             for k in range(5)]
    carbons = np.cumsum([np.zeros(2), *steps], axis=0)  # [6, 2]
    carbons -= carbons.mean(axis=0)
    hydrogens = carbons + C_H * carbons / np.linalg.norm(carbons, axis=1, keepdims=True)  # [6, 2]
    positions = np.hstack([np.vstack([carbons, hydrogens]), np.zeros((12, 1))])  # [12, 3]
    return positions, types(*[C] * 6, *[H] * 6)


def five_bonded_carbon() -> tuple[np.ndarray, np.ndarray]:
    """C with five H at 1.09 Å (trigonal bipyramid)."""
    angles = 2 * np.pi * np.arange(3) / 3
    equatorial = np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)  # [3, 3]
    directions = np.vstack([equatorial, [[0, 0, 1], [0, 0, -1]]])  # [5, 3]
    return np.vstack([np.zeros(3), C_H * directions]), types(C, H, H, H, H, H)


def joined(*molecules: tuple[np.ndarray, np.ndarray], gap: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """One molecule made of several far-apart fragments, in the given order."""
    positions = [x + np.array([gap * k, 0, 0]) for k, (x, _) in enumerate(molecules)]
    return np.vstack(positions), np.concatenate([t for _, t in molecules])


KNOWN = {
    "water": (water(), "[H]O[H]"),
    "methane": (methane(), "[H]C([H])([H])[H]"),
    "ethylene": (ethylene(), "[H]C([H])=C([H])[H]"),
    "acetylene": ((on_x_axis(-1.66, -0.6, 0.6, 1.66), types(H, C, C, H)), "[H]C#C[H]"),
    "hydrogen cyanide": ((on_x_axis(-1.06, 0.0, 1.16), types(H, C, N)), "[H]C#N"),
    "kekule benzene": (ring_benzene(1.34, 1.48), "[H]c1c([H])c([H])c([H])c([H])c1[H]"),
    "water and methane": (joined(water(), methane()), "[H]C([H])([H])[H]"),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_stable_valid_molecules(name):
    (positions, atom_types), smiles = KNOWN[name]
    check = check_molecule(positions, atom_types)
    assert check.stable_atoms.all() and check.stable
    assert check.valid and check.reason is None and not check.bad_input
    assert check.smiles == smiles


def test_aromatic_benzene_is_unstable_but_valid():
    # 139.5 pm C-C is not below 134 + 5: single bonds only, so every carbon has valence 3.
    check = check_molecule(*ring_benzene(1.395, 1.395))
    assert check.stable_atoms.tolist() == [False] * 6 + [True] * 6
    assert not check.stable
    assert check.valid  # RDKit adds an implicit hydrogen to each carbon
    assert check.smiles == "[H]C1C([H])C([H])C([H])C([H])C1[H]"


def test_five_bonded_carbon_is_unstable_and_invalid(capfd):
    check = check_molecule(*five_bonded_carbon())
    assert check.stable_atoms.tolist() == [False] + [True] * 5
    assert not check.valid and check.smiles is None and not check.bad_input
    assert check.reason.startswith("sanitization failed")
    assert "valence" not in capfd.readouterr().err.lower()  # RDKit's logging is silenced


def test_lone_atoms_are_unstable_but_valid():
    hydrogen = check_molecule(np.zeros((1, 3)), types(H))
    assert hydrogen.stable_atoms.tolist() == [False] and hydrogen.valid and hydrogen.smiles == "[HH]"
    carbon = check_molecule(np.zeros((1, 3)), types(C))
    assert carbon.stable_atoms.tolist() == [False] and carbon.valid and carbon.smiles == "C"


def test_largest_fragment_ties_keep_the_first():
    hydrogen_fluoride = (on_x_axis(0.0, 0.92), types(H, F))
    dihydrogen = (on_x_axis(0.0, 0.74), types(H, H))
    assert check_molecule(*joined(hydrogen_fluoride, dihydrogen)).smiles == "[H]F"
    assert check_molecule(*joined(dihydrogen, hydrogen_fluoride)).smiles == "[H][H]"


BAD_INPUTS = {
    "nan": (np.array([[np.nan, 0, 0], [0.96, 0, 0]]), types(O, H), "non-finite coordinates"),
    "inf": (np.array([[np.inf, 0, 0], [0.96, 0, 0]]), types(O, H), "non-finite coordinates"),
    "type 7": (on_x_axis(0.0, 0.96), types(7, H), "out of range"),
    "type -1": (on_x_axis(0.0, 0.96), types(-1, H), "out of range"),
    "float types": (on_x_axis(0.0, 0.96), np.array([3.0, 0.0]), "integers"),
    "empty": (np.zeros((0, 3)), types(), "no atoms"),
    "positions [N, 2]": (np.zeros((2, 2)), types(O, H), "shape"),
    "length mismatch": (np.zeros((3, 3)), types(O, H), "shape"),
    "types [N, 5]": (np.zeros((2, 3)), np.eye(5, dtype=int)[:2], "shape"),
    "ragged positions": ([[0.0, 0.0, 0.0], [1.0]], types(O, H), "not numeric"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_are_unstable_invalid_with_a_reason(name):
    positions, atom_types, reason = BAD_INPUTS[name]
    check = check_molecule(positions, atom_types)
    assert check.bad_input and not check.valid and not check.stable and check.smiles is None
    assert reason in check.reason
    assert not check.stable_atoms.any() and len(check.stable_atoms) == len(atom_types)


def test_bad_inputs_are_counted_and_reported():
    molecules = [water()] + [(x, t) for x, t, _ in BAD_INPUTS.values()]
    metrics = evaluate_molecules(molecules)
    assert metrics.n_molecules == len(molecules)
    assert metrics.n_valid == metrics.n_stable_molecules == 1
    assert metrics.n_stable_atoms == 3
    assert metrics.n_atoms == 3 + sum(len(t) for _, t, _ in BAD_INPUTS.values())
    assert [i for i, _ in metrics.problems] == list(range(1, len(molecules)))
    assert metrics.problems[0][1] == "non-finite coordinates"


def shifted(molecule: tuple[np.ndarray, np.ndarray], by: float) -> tuple[np.ndarray, np.ndarray]:
    """The same molecule translated along x."""
    positions, atom_types = molecule
    return positions + np.array([by, 0.0, 0.0]), atom_types


def test_uniqueness_and_novelty_counts():
    molecules = [water(), shifted(water(), 3.0), methane(), five_bonded_carbon(), BAD_INPUTS["nan"][:2]]
    metrics = evaluate_molecules(molecules, training_smiles={"[H]O[H]", "CCO"})
    assert metrics.smiles == ("[H]O[H]", "[H]O[H]", "[H]C([H])([H])[H]", None, None)
    assert (metrics.n_molecules, metrics.n_valid, metrics.n_unique, metrics.n_novel) == (5, 3, 2, 1)
    assert metrics.validity == pytest.approx(3 / 5)
    assert metrics.uniqueness == pytest.approx(2 / 3)
    assert metrics.valid_and_unique == pytest.approx(2 / 5)
    assert metrics.novelty == pytest.approx(1 / 2)
    assert (metrics.n_stable_molecules, metrics.mol_stable) == (3, pytest.approx(3 / 5))
    assert (metrics.n_atoms, metrics.n_stable_atoms) == (3 + 3 + 5 + 6 + 2, 3 + 3 + 5 + 5)

    without_training = evaluate_molecules(molecules)
    assert without_training.novelty is None and without_training.n_novel is None


def test_no_molecules_gives_zeros():
    metrics = evaluate_molecules([], training_smiles=set())
    assert metrics.to_dict() == {
        "atom_stable": 0.0, "mol_stable": 0.0, "validity": 0.0, "uniqueness": 0.0, "valid_and_unique": 0.0,
        "novelty": 0.0, "n_molecules": 0, "n_atoms": 0, "n_stable_atoms": 0, "n_stable_molecules": 0,
        "n_valid": 0, "n_unique": 0, "n_novel": 0,
    }


def test_to_dict_is_json_and_table_shows_percentages():
    metrics = evaluate_molecules([water(), five_bonded_carbon(), methane()], progress=True)
    assert isinstance(metrics, Metrics)
    record = json.loads(json.dumps(metrics.to_dict()))
    assert list(record)[:6] == ["atom_stable", "mol_stable", "validity", "uniqueness", "valid_and_unique",
                                "novelty"]
    assert "smiles" not in record and "problems" not in record
    table = metrics.format_table()
    assert "66.67" in table  # validity 2 / 3
    assert "92.86" in table  # atom stability 13 / 14


def test_training_smiles_uses_whole_molecules():
    molecules = [joined(water(), methane()), water(), five_bonded_carbon(), BAD_INPUTS["nan"][:2]]
    smiles = training_smiles(molecules)
    assert smiles == {"[H]C([H])([H])[H].[H]O[H]", "[H]O[H]"}


def test_random_point_clouds_never_raise():
    rng = np.random.default_rng(1234)
    molecules = []
    for _ in range(4000):
        n = int(rng.integers(1, 31))
        positions = rng.normal(size=(n, 3)) * rng.uniform(0.5, 3.0)  # [N, 3]
        molecules.append((positions, rng.integers(0, 5, size=n)))
    metrics = evaluate_molecules(molecules, training_smiles=training_smiles(molecules[:200]))
    assert metrics.n_molecules == 4000 and not metrics.problems
    assert 0 < metrics.n_valid < 4000
    assert metrics.n_valid == sum(s is not None for s in metrics.smiles)
    assert 0 < metrics.n_stable_atoms < metrics.n_atoms
