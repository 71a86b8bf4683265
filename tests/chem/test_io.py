"""XYZ and SDF reading and writing: round trips, RDKit compatibility, atomic writes and malformed files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.io import read_molecules, read_sdf, read_xyz, write_molecules, write_sdf, write_xyz
from molgen.elements import ELEMENTS
from molgen.errors import MoleculeFileError

WRITERS = {"xyz": write_xyz, "sdf": write_sdf}
READERS = {"xyz": read_xyz, "sdf": read_sdf}


def random_molecules(seed: int = 0, count: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """Molecules of 1 to 29 atoms with random positions (a few Å across) and atom types."""
    rng = np.random.default_rng(seed)
    molecules = []
    for _ in range(count):
        n = int(rng.integers(1, 30))
        molecules.append((rng.normal(scale=3.0, size=(n, 3)), rng.integers(0, 5, size=n)))
    return molecules


def ethylene() -> tuple[np.ndarray, np.ndarray]:
    """C2H4 in the xy-plane: C=C 1.339 Å, C-H 1.087 Å, H-C-H 117.4°."""
    half_cc, ch, half_angle = 1.339 / 2, 1.087, math.radians(117.4 / 2)
    dx, dy = ch * math.cos(half_angle), ch * math.sin(half_angle)
    positions = [
        [-half_cc, 0.0, 0.0], [half_cc, 0.0, 0.0],
        [-half_cc - dx, dy, 0.0], [-half_cc - dx, -dy, 0.0],
        [half_cc + dx, dy, 0.0], [half_cc + dx, -dy, 0.0],
    ]
    return np.array(positions), np.array([1, 1, 0, 0, 0, 0])


def hydrogen_cyanide() -> tuple[np.ndarray, np.ndarray]:
    """Linear HCN: H-C 1.064 Å, C#N 1.156 Å."""
    return np.array([[-1.064, 0.0, 0.0], [0.0, 0.0, 0.0], [1.156, 0.0, 0.0]]), np.array([0, 1, 2])


def rounded(positions: np.ndarray, decimals: int) -> np.ndarray:
    """The values exactly as a writer with `decimals` decimals prints them."""
    return np.vectorize(lambda v: float(f"{v:.{decimals}f}"))(positions)


# ------------------------------------------------------------------------------------------- round trips


def test_xyz_round_trip_to_1e_8(tmp_path):
    molecules = random_molecules()
    write_xyz(tmp_path / "m.xyz", molecules)
    read = read_xyz(tmp_path / "m.xyz")
    assert len(read) == len(molecules)
    for (positions, types), (positions_read, types_read) in zip(molecules, read):
        assert positions_read.dtype == np.float64 and types_read.dtype == np.int64
        np.testing.assert_allclose(positions_read, positions, rtol=0, atol=1e-8)
        np.testing.assert_array_equal(types_read, types)


def test_sdf_round_trip_gives_the_4_decimal_values(tmp_path):
    molecules = random_molecules(seed=1)
    write_sdf(tmp_path / "m.sdf", molecules)
    read = read_sdf(tmp_path / "m.sdf")
    assert len(read) == len(molecules)
    for (positions, types), (positions_read, types_read) in zip(molecules, read):
        assert positions_read.dtype == np.float64 and types_read.dtype == np.int64
        np.testing.assert_array_equal(positions_read, rounded(positions, 4))
        np.testing.assert_allclose(positions_read, positions, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(types_read, types)


@pytest.mark.parametrize("name", ["m.xyz", "m.sdf", "M.XYZ", "M.SDF"])
def test_read_and_write_molecules_dispatch_on_the_suffix(tmp_path, name):
    molecules = random_molecules(seed=2, count=3)
    write_molecules(tmp_path / name, molecules, names=["a", "b", "c"])
    read = read_molecules(tmp_path / name)
    assert [len(types) for _, types in read] == [len(types) for _, types in molecules]
    first_line = (tmp_path / name).read_text().splitlines()[0 if name.lower().endswith("sdf") else 1]
    assert first_line == "a"


@pytest.mark.parametrize("name", ["m.pdb", "m.mol", "m"])
def test_unknown_suffix_names_the_supported_ones(tmp_path, name):
    with pytest.raises(MoleculeFileError, match=r"\.xyz and \.sdf"):
        read_molecules(tmp_path / name)
    with pytest.raises(MoleculeFileError, match=r"\.xyz and \.sdf"):
        write_molecules(tmp_path / name, [ethylene()])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["xyz", "sdf"])
def test_writers_accept_torch_tensors_and_lists(tmp_path, kind):
    positions, types = ethylene()
    molecules = [
        (torch.tensor(positions, dtype=torch.float32), torch.tensor(types)),
        (positions.tolist(), types.tolist()),
    ]
    WRITERS[kind](tmp_path / f"m.{kind}", molecules)
    for positions_read, types_read in READERS[kind](tmp_path / f"m.{kind}"):
        np.testing.assert_allclose(positions_read, positions, atol=1e-4)
        np.testing.assert_array_equal(types_read, types)


def test_default_comments_and_names(tmp_path):
    write_xyz(tmp_path / "m.xyz", [ethylene(), hydrogen_cyanide()], comments=["first", "second"])
    lines = (tmp_path / "m.xyz").read_text().splitlines()
    assert lines[1] == "first" and lines[9] == "second"
    write_xyz(tmp_path / "m.xyz", [ethylene()])
    assert (tmp_path / "m.xyz").read_text().splitlines()[1] == "molecule 0"


# ------------------------------------------------------------------------------------------- RDKit


def test_rdkit_reads_the_sdf_atoms_coordinates_and_bonds(tmp_path):
    molecules, names = [ethylene(), hydrogen_cyanide()], ["ethylene", "hydrogen cyanide"]
    write_sdf(tmp_path / "m.sdf", molecules, names=names)
    supplier = Chem.SDMolSupplier(str(tmp_path / "m.sdf"), sanitize=False, removeHs=False)
    rdkit_molecules = list(supplier)
    assert len(rdkit_molecules) == 2
    expected_bonds = [
        {(0, 1): 2, (0, 2): 1, (0, 3): 1, (1, 4): 1, (1, 5): 1},  # C=C and four C-H
        {(0, 1): 1, (1, 2): 3},  # H-C and C#N
    ]
    for (positions, types), mol, name, expected in zip(molecules, rdkit_molecules, names, expected_bonds):
        assert mol is not None and mol.GetProp("_Name") == name
        assert [atom.GetSymbol() for atom in mol.GetAtoms()] == [ELEMENTS[t] for t in types]
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), rounded(positions, 4), atol=1e-12)
        bonds = {
            (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()): int(bond.GetBondTypeAsDouble())
            for bond in mol.GetBonds()
        }
        order = bond_order_matrix(positions, types)
        assert bonds == {(int(i), int(j)): int(order[i, j]) for i, j in zip(*np.nonzero(np.triu(order)))}
        assert bonds == expected


def test_sdf_holds_at_most_999_atoms_and_bonds(tmp_path):
    rng = np.random.default_rng(3)
    many_atoms = (rng.uniform(0, 100, size=(1000, 3)), np.zeros(1000, dtype=np.int64))
    with pytest.raises(ValueError, match="molecule 0 has 1000 atoms"):
        write_sdf(tmp_path / "m.sdf", [many_atoms])
    clump = (rng.uniform(0, 0.1, size=(46, 3)), np.zeros(46, dtype=np.int64))  # every pair bonded: 1035 bonds
    with pytest.raises(ValueError, match="molecule 0 has 1035 bonds"):
        write_sdf(tmp_path / "m.sdf", [clump])
    far = (np.array([[1e5, 0.0, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="out of V2000's range"):
        write_sdf(tmp_path / "m.sdf", [far])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("kind", ["xyz", "sdf"])
def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path, kind):
    good, bad = ethylene(), (np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), np.array([1, 1]))
    target = tmp_path / f"m.{kind}"
    with pytest.raises(ValueError, match="molecule 1"):
        WRITERS[kind](target, [good, bad, good])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["xyz", "sdf"])
def test_a_failed_write_keeps_the_old_file(tmp_path, kind):
    target = tmp_path / f"m.{kind}"
    WRITERS[kind](target, [hydrogen_cyanide()])
    old = target.read_bytes()
    bad = (np.array([[0.0, 0.0, np.inf]]), np.array([0]))
    with pytest.raises(ValueError, match="molecule 2"):
        WRITERS[kind](target, [ethylene(), ethylene(), bad])
    assert target.read_bytes() == old
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("molecule", "problem"),
    [
        ((np.zeros((0, 3)), np.zeros(0, dtype=np.int64)), r"shape \[N, 3\] with N >= 1"),
        ((np.zeros((2, 2)), np.zeros(2, dtype=np.int64)), r"shape \[N, 3\]"),
        ((np.zeros((2, 3)), np.zeros(3, dtype=np.int64)), r"atom_types must have shape \[2\]"),
        ((np.zeros((1, 3)), np.array([5])), r"must lie in 0\.\.4"),
        ((np.zeros((1, 3)), np.array([-1])), r"must lie in 0\.\.4"),
        ((np.zeros((1, 3)), np.array([1.0])), "must be integers"),
        ((np.array([["a", "b", "c"]]), np.array([1])), "not a numeric"),
        (None, r"not a \(positions, atom_types\) pair"),
        ((np.zeros((1, 3)), np.array([1]), "C"), r"not a \(positions, atom_types\) pair"),
    ],
)
def test_writers_reject_invalid_molecules_naming_the_index(tmp_path, molecule, problem):
    for kind, write in WRITERS.items():
        with pytest.raises(ValueError, match=f"molecule 1.*{problem}"):
            write(tmp_path / f"m.{kind}", [ethylene(), molecule])
    assert list(tmp_path.iterdir()) == []


def test_writers_reject_bad_labels_and_empty_lists(tmp_path):
    with pytest.raises(ValueError, match="comments: got 1 for 2 molecules"):
        write_xyz(tmp_path / "m.xyz", [ethylene(), ethylene()], comments=["one"])
    with pytest.raises(ValueError, match="name 0 spans more than one line"):
        write_sdf(tmp_path / "m.sdf", [ethylene()], names=["two\nlines"])
    with pytest.raises(ValueError, match="no molecules to write"):
        write_xyz(tmp_path / "m.xyz", [])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- tolerated input


def test_xyz_atomic_numbers_windows_line_endings_and_trailing_blank_lines(tmp_path):
    hcn = ["3", "HCN", "1 -1.064 0 0", "6 0.0 0.0 0.0", "7 1.156 0 0"]  # atomic numbers first
    lines = hcn + ["2", "", "C 0 0 0", "O 1.2 0 0", "", "", "  "]  # an empty comment, trailing blank lines
    (tmp_path / "m.xyz").write_bytes("".join(line + "\r\n" for line in lines).encode())
    (hcn_positions, hcn_types), (co_positions, co_types) = read_xyz(tmp_path / "m.xyz")
    np.testing.assert_array_equal(hcn_positions, hydrogen_cyanide()[0])
    np.testing.assert_array_equal(hcn_types, [0, 1, 2])
    np.testing.assert_array_equal(co_positions, [[0, 0, 0], [1.2, 0, 0]])
    np.testing.assert_array_equal(co_types, [1, 3])


def test_sdf_without_final_dollars_and_with_windows_line_endings(tmp_path):
    write_sdf(tmp_path / "m.sdf", [ethylene(), hydrogen_cyanide()])
    text = (tmp_path / "m.sdf").read_text()
    assert text.endswith("M  END\n$$$$\n")
    (tmp_path / "m.sdf").write_bytes(text.removesuffix("$$$$\n").replace("\n", "\r\n").encode())
    read = read_sdf(tmp_path / "m.sdf")
    assert [types.tolist() for _, types in read] == [[1, 1, 0, 0, 0, 0], [0, 1, 2]]
    (tmp_path / "m.sdf").write_text(text + "\n\n")
    assert len(read_sdf(tmp_path / "m.sdf")) == 2


# ------------------------------------------------------------------------------------------- malformed files


def sdf_lines(tmp_path) -> list[str]:
    """The lines of a valid one-record SDF of ethylene (6 atoms on lines 5-10, 5 bonds on lines 11-15)."""
    write_sdf(tmp_path / "valid.sdf", [ethylene()])
    return (tmp_path / "valid.sdf").read_text().splitlines()


def edited(lines: list[str], line: int, text: str | None) -> str:
    """The file text with 1-based `line` replaced by `text` (or removed if None)."""
    lines = list(lines)
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


def assert_file_error(read, path, line: int | None, problem: str) -> None:
    """Reading `path` raises one MoleculeFileError naming the file, the line and the problem."""
    with pytest.raises(MoleculeFileError) as info:
        read(path)
    error = info.value
    assert str(path) in str(error)
    assert error.line == line
    if line is not None:
        assert f"line {line}:" in str(error)
    assert problem in str(error)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


XYZ_CASES = [
    ("", None, "no molecules"),
    ("\n  \n\n", None, "no molecules"),
    ("5\ncomment\nH 0 0 0\nH 0 0 1\nH 0 0 2\n", 1, "says 5 atoms but only 3 atom lines follow"),
    ("5\ncomment\nH 0 0 0\nH 0 0 1\nH 0 0 2", 1, "only 3 atom lines follow"),
    ("1\nc\nH 0 0 0\n\n3\nc\nH 0 0 0\n", 5, "says 3 atoms but only 1 atom line follows"),
    ("2\n", 1, "only 0 atom lines follow"),
    ("x\ncomment\nH 0 0 0\n", 1, "expected an atom count (a positive integer), found 'x'"),
    ("0\ncomment\n", 1, "expected an atom count (a positive integer), found '0'"),
    ("-1\ncomment\nH 0 0 0\n", 1, "a positive integer"),
    ("1.5\ncomment\nH 0 0 0\n", 1, "a positive integer"),
    ("1\nc\nH 0 0 0\nH 0 0 1\n", 4, "expected an atom count (a positive integer), found 'H 0 0 1'"),
    ("2\nc\nH 0 0 0\nXx 0 0 1\n", 4, "unknown element 'Xx'; molgen knows H, C, N, O, F"),
    ("1\nc\nc 0 0 0\n", 3, "unknown element 'c'"),
    ("1\nc\n17 0 0 0\n", 3, "unknown atomic number 17"),
    ("1\nc\nH 0 0\n", 3, "expected 4 fields (element x y z) on an atom line, found 3"),
    ("1\nc\nH 0 0 0 0.5\n", 3, "found 5"),
    ("1\nc\nH 0 abc 0\n", 3, "cannot read coordinate 'abc' as a number"),
    ("2\nc\nH 0 0 0\nH 0 nan 0\n", 4, "non-finite coordinate 'nan'"),
    ("1\nc\nH -inf 0 0\n", 3, "non-finite coordinate '-inf'"),
    ("1\r\nc\r\nH 0 0 0\r\n2\r\nc\r\nH 0 0 0\r\nF 1e400 0 0\r\n", 7, "non-finite coordinate '1e400'"),
]


@pytest.mark.parametrize(("text", "line", "problem"), XYZ_CASES)
def test_malformed_xyz_gives_one_file_error(tmp_path, text, line, problem):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    assert_file_error(read_xyz, path, line, problem)
    assert_file_error(read_molecules, path, line, problem)


@pytest.mark.parametrize("read", [read_xyz, read_sdf, read_molecules])
def test_missing_file(tmp_path, read):
    assert_file_error(read, tmp_path / "absent.sdf", None, "no such file")


def counts_line(atoms: str, bonds: str) -> str:
    """A V2000 counts line with the given (3-column) atom and bond count fields."""
    return atoms + bonds + "  0" * 8 + "999 V2000"


def atom_line(coordinates: str, symbol: str) -> str:
    """A V2000 atom line with the given (30-column) coordinate fields and element."""
    return f"{coordinates} {symbol:<3} 0" + "  0" * 11


SDF_EDITS = [
    # (1-based line to replace, its new text or None to remove it, the error's line, the problem)
    (4, "  6", 4, "the counts line is too short"),
    (4, "", 4, "the counts line is too short"),
    (4, counts_line("abc", "  5"), 4, "expected an atom count in columns 1-3 (a positive integer)"),
    (4, counts_line("  0", "  5"), 4, "a positive integer), found '0'"),
    (4, counts_line("  6", "  x"), 4, "expected a bond count in columns 4-6"),
    (4, "  0  0  0     0  0            999 V3000", 4, "V3000 is not supported"),
    (4, counts_line("  7", "  5"), 4, "the counts line says 7 atoms but only 6 atom lines follow (line"),
    (4, counts_line("  6", "  6"), 4, "the counts line says 6 bonds but only 5 bond lines follow"),
    (12, None, 4, "the counts line says 5 bonds but only 4 bond lines follow"),
    (16, "M  CHG  0", 4, "no 'M  END' line"),
    (6, atom_line("    0.0000    1.0000    0.0000", "Xx"), 6, "unknown element 'Xx'"),
    (6, atom_line("    0.0000       nan    0.0000", "C"), 6, "non-finite coordinate 'nan'"),
    (9, atom_line("    0.0000    1.0x00    0.0000", "H"), 9, "cannot read coordinate '1.0x00'"),
    (10, "0.0 0.0 0.0 H", 10, "the atom line is too short"),
]


@pytest.mark.parametrize(("line", "text", "error_line", "problem"), SDF_EDITS)
def test_malformed_sdf_gives_one_file_error(tmp_path, line, text, error_line, problem):
    lines = sdf_lines(tmp_path)
    path = tmp_path / "bad.sdf"
    path.write_text(edited(lines, line, text))
    assert_file_error(read_sdf, path, error_line, problem)
    path.write_text("\n".join(lines) + "\n" + edited(lines, line, text))  # the same fault in a second record
    assert_file_error(read_sdf, path, error_line + len(lines), problem)


@pytest.mark.parametrize(
    ("keep", "line", "problem"),
    [
        (0, None, "no molecules"),
        (2, 1, "the record ends before its counts line"),
        (8, 4, "the counts line says 6 atoms but only 4 atom lines follow"),
        (12, 4, "the counts line says 5 bonds but only 2 bond lines follow"),
        (15, 4, "no 'M  END' line (its last line is line 15)"),
    ],
)
def test_truncated_sdf(tmp_path, keep, line, problem):
    path = tmp_path / "cut.sdf"
    path.write_text("".join(text + "\n" for text in sdf_lines(tmp_path)[:keep]))
    assert_file_error(read_sdf, path, line, problem)
