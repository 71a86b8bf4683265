"""Reading and writing molecules as multi-molecule XYZ and V2000 SDF files.

A molecule is a pair (positions float64 [N, 3] in Å, atom_types int64 [N] indices into ELEMENTS).
Writers go through `atomic_write`, so a failed write never leaves a half-written file; readers raise one
`MoleculeFileError` naming the file and the 1-based line for every malformed input.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molgen.atomic import atomic_write
from molgen.batch import Molecule
from molgen.chem.bonds import bond_order_matrix
from molgen.chem.validate import check_labels, check_molecules, checked_molecule
from molgen.elements import ATOMIC_NUMBERS, ELEMENTS, TYPE_INDEX
from molgen.errors import MolgenError, MoleculeFileError

PathLike = str | os.PathLike
FragmentSource = PathLike | tuple[Sequence, Sequence]
"""A fragment file (.xyz or .sdf, one molecule), or (positions [K, 3] in Å, atom types [K] as indices or symbols)."""

V2000_MAX_COUNT = 999  # the atom and bond counts are three-character fields
_KNOWN_ELEMENTS = ", ".join(ELEMENTS)
_TYPE_BY_ATOMIC_NUMBER = {number: i for i, number in enumerate(ATOMIC_NUMBERS)}
_UNSIGNED_INT = re.compile(r"[0-9]+")


# ---------------------------------------------------------------------------------------------- parsing


def _read_lines(path: PathLike) -> list[str]:
    """The lines of a text file without their line endings (\\n or \\r\\n)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MoleculeFileError(path, None, "no such file") from None
    except IsADirectoryError:
        raise MoleculeFileError(path, None, "is a directory, not a molecule file") from None
    except OSError as error:
        raise MoleculeFileError(path, None, f"cannot read the file ({error.strerror})") from None
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # the empty string after the final line ending
    return [line.removesuffix("\r") for line in lines]


def _is_blank(line: str) -> bool:
    """Whether a line holds only whitespace."""
    return not line.strip()


def _only_follow(count: int, kind: str) -> str:
    """'only 1 atom line follows' / 'only n atom lines follow'."""
    return f"only 1 {kind} line follows" if count == 1 else f"only {count} {kind} lines follow"


def _parse_count(path: PathLike, lineno: int, text: str, what: str, minimum: int) -> int:
    """An integer field (an atom or bond count) of at least `minimum` (0 or 1)."""
    text = text.strip()
    if not _UNSIGNED_INT.fullmatch(text) or int(text) < minimum:
        kind = "a positive integer" if minimum else "a non-negative integer"
        raise MoleculeFileError(path, lineno, f"expected {what} ({kind}), found {text!r}")
    return int(text)


def _parse_coordinate(path: PathLike, lineno: int, text: str) -> float:
    """A finite coordinate."""
    try:
        value = float(text)
    except ValueError:
        problem = f"cannot read coordinate {text.strip()!r} as a number"
        raise MoleculeFileError(path, lineno, problem) from None
    if not math.isfinite(value):
        raise MoleculeFileError(path, lineno, f"non-finite coordinate {text.strip()!r}")
    return value


def _parse_symbol(path: PathLike, lineno: int, symbol: str) -> int:
    """The atom-type index of an element symbol (exact case)."""
    if symbol not in TYPE_INDEX:
        raise MoleculeFileError(path, lineno, f"unknown element {symbol!r}; molgen knows {_KNOWN_ELEMENTS}")
    return TYPE_INDEX[symbol]


def _parse_element(path: PathLike, lineno: int, field: str) -> int:
    """The atom-type index of an element symbol or atomic number (as some XYZ writers emit)."""
    if not _UNSIGNED_INT.fullmatch(field):
        return _parse_symbol(path, lineno, field)
    number = int(field)
    if number not in _TYPE_BY_ATOMIC_NUMBER:
        known = ", ".join(map(str, ATOMIC_NUMBERS))
        problem = f"unknown atomic number {number}; molgen knows {known} ({_KNOWN_ELEMENTS})"
        raise MoleculeFileError(path, lineno, problem)
    return _TYPE_BY_ATOMIC_NUMBER[number]


def _as_molecule(positions: list[list[float]], atom_types: list[int]) -> Molecule:
    """Parsed atoms as the molecule arrays."""
    return np.array(positions, dtype=np.float64).reshape(-1, 3), np.array(atom_types, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- XYZ


def write_xyz(path: PathLike, molecules: Iterable[Any], comments: Sequence[str] | None = None) -> None:
    """Write molecules to one multi-molecule XYZ file, coordinates with 8 decimals.

    Args:
        molecules: (positions [N, 3] Å, atom_types [N]) pairs; numpy arrays, torch tensors or lists.
        comments: one single-line comment per molecule; "molecule i" by default.
    """
    molecules = check_molecules(molecules)
    comments = check_labels(comments, len(molecules), "comment")
    with atomic_write(path) as handle:
        for index, (molecule, comment) in enumerate(zip(molecules, comments)):
            handle.write(_xyz_block(*checked_molecule(f"molecule {index}", molecule), comment))


def _xyz_block(positions: np.ndarray, atom_types: np.ndarray, comment: str) -> str:
    """One molecule as XYZ text: atom count, comment, then `Sym x y z` lines."""
    lines = [str(len(positions)), comment]
    for (x, y, z), atom_type in zip(positions, atom_types):
        lines.append(f"{ELEMENTS[atom_type]:<2} {x:15.8f} {y:15.8f} {z:15.8f}")
    return "\n".join(lines) + "\n"


def read_xyz(path: PathLike) -> list[Molecule]:
    """Read every molecule of a multi-molecule XYZ file (element symbols or atomic numbers first)."""
    lines = _read_lines(path)
    molecules = []
    start = _skip_blank(lines, 0)
    while start < len(lines):
        molecule, start = _read_xyz_block(path, lines, start)
        molecules.append(molecule)
        start = _skip_blank(lines, start)
    if not molecules:
        raise MoleculeFileError(path, None, "no molecules")
    return molecules


def _skip_blank(lines: list[str], start: int) -> int:
    """The index of the first non-blank line from `start` on (len(lines) if none)."""
    while start < len(lines) and _is_blank(lines[start]):
        start += 1
    return start


def _read_xyz_block(path: PathLike, lines: list[str], start: int) -> tuple[Molecule, int]:
    """The molecule whose atom-count line is lines[start], and the index of the line after it."""
    count = _parse_count(path, start + 1, lines[start], "an atom count", minimum=1)
    first = start + 2  # the atom lines follow the count and comment lines
    present = 0
    while present < count and first + present < len(lines) and not _is_blank(lines[first + present]):
        present += 1
    if present < count:
        problem = f"the atom count says {count} atoms but {_only_follow(present, 'atom')}"
        raise MoleculeFileError(path, start + 1, problem)
    positions, atom_types = [], []
    for index in range(first, first + count):
        atom_type, xyz = _parse_xyz_atom(path, index + 1, lines[index])
        atom_types.append(atom_type)
        positions.append(xyz)
    return _as_molecule(positions, atom_types), first + count


def _parse_xyz_atom(path: PathLike, lineno: int, line: str) -> tuple[int, list[float]]:
    """One `Sym x y z` (or `Z x y z`) line as (atom type, [x, y, z])."""
    fields = line.split()
    if len(fields) != 4:
        problem = f"expected 4 fields (element x y z) on an atom line, found {len(fields)}"
        raise MoleculeFileError(path, lineno, problem)
    atom_type = _parse_element(path, lineno, fields[0])
    return atom_type, [_parse_coordinate(path, lineno, field) for field in fields[1:]]


# ---------------------------------------------------------------------------------------------- SDF


def write_sdf(path: PathLike, molecules: Iterable[Any], names: Sequence[str] | None = None,
              properties: Sequence[dict[str, str]] | None = None, orders: Sequence[np.ndarray] | None = None) -> None:
    """Write molecules to one V2000 SDF file with EDM's distance-based bonds, coordinates with 4 decimals.

    Args:
        molecules: (positions [N, 3] Å, atom_types [N]) pairs; numpy arrays, torch tensors or lists.
        names: one single-line name (the record's first line) per molecule; "molecule i" by default.
        properties: SD properties (name: single-line value) of each molecule, written after `M  END`.
        orders: each molecule's bond orders [N, N] (0-3) instead of EDM's bonds.
    """
    molecules = check_molecules(molecules)
    names = check_labels(names, len(molecules), "name")
    with atomic_write(path) as handle:
        for index, (molecule, name) in enumerate(zip(molecules, names)):
            positions, atom_types = checked_molecule(f"molecule {index}", molecule)
            order = bond_order_matrix(positions, atom_types) if orders is None else np.asarray(orders[index])
            handle.write(_sdf_record(index, positions, atom_types, name, order, properties and properties[index]))


def _sd_property_lines(index: int, properties: dict[str, str] | None) -> list[str]:
    """`> <name>`, the value and a blank line for each SD property (ValueError for a value of several lines)."""
    for key, value in (properties or {}).items():
        if any(c in f"{key}{value}" for c in "\r\n") or any(c in key for c in "<>"):
            raise ValueError(f"molecule {index}: SD property {key!r} = {value!r} must be one line")
    return [line for key, value in (properties or {}).items() for line in (f"> <{key}>", value, "")]


def _sdf_record(index: int, positions: np.ndarray, atom_types: np.ndarray, name: str, order: np.ndarray,
                properties: dict[str, str] | None = None) -> str:
    """One molecule with bond orders [N, N] as a V2000 molfile record, its SD properties and `$$$$`."""
    if len(positions) > V2000_MAX_COUNT:
        raise ValueError(f"molecule {index} has {len(positions)} atoms, more than V2000's {V2000_MAX_COUNT}")
    bonds = [(i, j, int(order[i, j])) for i, j in zip(*np.nonzero(np.triu(order, k=1)))]
    if len(bonds) > V2000_MAX_COUNT:
        raise ValueError(f"molecule {index} has {len(bonds)} bonds, more than V2000's {V2000_MAX_COUNT}")
    lines = [
        name,
        f"{'':2}{'molgen':<8}{'':10}3D",  # initials, program, date (left blank: reproducible files), 3D
        "",
        f"{len(positions):3d}{len(bonds):3d}" + "  0" * 8 + "999 V2000",
    ]
    for xyz, atom_type in zip(positions, atom_types):
        lines.append(_sdf_coordinates(index, xyz) + f" {ELEMENTS[atom_type]:<3}" + " 0" + "  0" * 11)
    for i, j, bond_type in bonds:
        lines.append(f"{i + 1:3d}{j + 1:3d}{bond_type:3d}" + "  0" * 4)
    lines += ["M  END", *_sd_property_lines(index, properties), "$$$$"]
    return "\n".join(lines) + "\n"


def _sdf_coordinates(index: int, xyz: np.ndarray) -> str:
    """x, y, z in V2000's fixed 10.4 columns, or ValueError if one does not fit."""
    fields = [f"{value:10.4f}" for value in xyz]
    if any(len(field) > 10 for field in fields):
        problem = f"a coordinate of {xyz} is out of V2000's range (-9999.9999 to 99999.9999 Å)"
        raise ValueError(f"molecule {index}: {problem}")
    return "".join(fields)


def read_sdf(path: PathLike) -> list[Molecule]:
    """Read the atoms (elements and coordinates) of every V2000 record of an SDF file; bonds are ignored."""
    return read_sdf_with_bonds(path, bonds=False)[0]


def read_sdf_with_bonds(path: PathLike, bonds: bool = True) -> tuple[list[Molecule], list[np.ndarray]]:
    """The molecules of an SDF file and, with `bonds`, each one's bond orders [N, N] from its bond block (single,
    double, triple; MoleculeFileError for other bond types, such as aromatic 4)."""
    lines = _read_lines(path)
    molecules, orders = [], []
    start = 0
    while _skip_blank(lines, start) < len(lines):
        end = _record_end(lines, start)
        molecule, first_bond, bond_count = _read_sdf_record(path, lines, start, end)
        molecules.append(molecule)
        if bonds:
            orders.append(_bond_orders(path, lines, first_bond, bond_count, len(molecule[1])))
        start = end + 1
    if not molecules:
        raise MoleculeFileError(path, None, "no molecules")
    return molecules, orders


def _bond_orders(path: PathLike, lines: list[str], first: int, count: int, atoms: int) -> np.ndarray:
    """The [N, N] bond orders of a V2000 bond block (`111222ttt`: atoms i, j from 1, bond type)."""
    order = np.zeros((atoms, atoms), dtype=np.int64)
    for index in range(first, first + count):
        i, j, kind = (_parse_count(path, index + 1, lines[index][c:c + 3], what, minimum=1) for c, what in
                      ((0, "an atom number in columns 1-3"), (3, "an atom number in columns 4-6"),
                       (6, "a bond type in columns 7-9")))
        if max(i, j) > atoms or i == j:
            raise MoleculeFileError(path, index + 1, f"a bond between atoms {i} and {j} of {atoms}")
        if kind > 3:
            problem = f"bond type {kind} (molgen reads single, double and triple bonds: write the file kekulised)"
            raise MoleculeFileError(path, index + 1, problem)
        order[i - 1, j - 1] = order[j - 1, i - 1] = kind
    return order


def _record_end(lines: list[str], start: int) -> int:
    """The index of the `$$$$` line that ends the record starting at lines[start] (len(lines) if missing)."""
    end = start
    while end < len(lines) and not lines[end].startswith("$$$$"):
        end += 1
    return end


def _read_sdf_record(path: PathLike, lines: list[str], start: int, end: int) -> tuple[Molecule, int, int]:
    """The atoms of the molfile in lines[start:end] (header, counts line, atom block, bond block, M  END), the index
    of its first bond line and the bond count."""
    counts = start + 3  # after the name, program and comment lines
    if counts >= end:
        raise MoleculeFileError(path, start + 1, "the record ends before its counts line (its 4th line)")
    atom_count, bond_count = _parse_counts_line(path, counts + 1, lines[counts])
    first_atom, first_bond = counts + 1, counts + 1 + atom_count
    present = _block_length(lines, first_atom, end, atom_count, stop=_is_bond_line)
    if present < atom_count:
        problem = f"the counts line says {atom_count} atoms but {_only_follow(present, 'atom')}"
        if first_atom + present < end and _is_bond_line(lines[first_atom + present]):
            problem += f" (line {first_atom + present + 1} is a bond line)"
        raise MoleculeFileError(path, counts + 1, problem)
    positions, atom_types = [], []
    for index in range(first_atom, first_bond):
        atom_type, xyz = _parse_sdf_atom(path, index + 1, lines[index])
        atom_types.append(atom_type)
        positions.append(xyz)
    present = _block_length(lines, first_bond, end, bond_count)
    if present < bond_count:
        problem = f"the counts line says {bond_count} bonds but {_only_follow(present, 'bond')} the atoms"
        raise MoleculeFileError(path, counts + 1, problem)
    if not any(line.startswith("M  END") for line in lines[first_bond + bond_count : end]):
        problem = f"the record has no 'M  END' line (its last line is line {end})"
        raise MoleculeFileError(path, counts + 1, problem)
    return _as_molecule(positions, atom_types), first_bond, bond_count


def _parse_counts_line(path: PathLike, lineno: int, line: str) -> tuple[int, int]:
    """The atom and bond counts of a V2000 counts line (`aaabbb...999 V2000`)."""
    if "V3000" in line:
        raise MoleculeFileError(path, lineno, "V3000 is not supported; write the file as V2000")
    if len(line) < 6:
        raise MoleculeFileError(path, lineno, f"the counts line is too short: {line!r}")
    atom_count = _parse_count(path, lineno, line[0:3], "an atom count in columns 1-3", minimum=1)
    bond_count = _parse_count(path, lineno, line[3:6], "a bond count in columns 4-6", minimum=0)
    return atom_count, bond_count


def _block_length(
    lines: list[str], first: int, end: int, count: int, stop: Callable[[str], bool] = lambda line: False
) -> int:
    """How many of `count` block lines from lines[first] come before the record's end, its `M  ` lines or a line
    for which `stop` is true."""
    present = 0
    while (present < count and first + present < end and not lines[first + present].startswith("M  ")
           and not stop(lines[first + present])):
        present += 1
    return present


_BOND_LINE = re.compile(r"\s*\d+(\s+\d+){2,6}\s*")  # 3 to 7 integer fields, no coordinates


def _is_bond_line(line: str) -> bool:
    """Whether a line looks like a V2000 bond line (`111222tttsss...`: integers only) rather than an atom line."""
    return _BOND_LINE.fullmatch(line) is not None


def _parse_sdf_atom(path: PathLike, lineno: int, line: str) -> tuple[int, list[float]]:
    """One V2000 atom line (x, y, z in columns 1-30, the element in 32-34) as (atom type, [x, y, z])."""
    if len(line.rstrip()) < 32:
        problem = "the atom line is too short (V2000 has x, y, z in columns 1-30 and the element in 32-34)"
        raise MoleculeFileError(path, lineno, problem)
    xyz = [_parse_coordinate(path, lineno, line[column : column + 10]) for column in (0, 10, 20)]
    return _parse_symbol(path, lineno, line[31:34].strip()), xyz


# ---------------------------------------------------------------------------------------------- dispatch

_READERS = {".xyz": read_xyz, ".sdf": read_sdf}
_WRITERS = {".xyz": write_xyz, ".sdf": write_sdf}


def _suffix(path: PathLike) -> str:
    """The lower-case suffix of a molecule file, or MoleculeFileError if molgen has no format for it."""
    suffix = Path(path).suffix.lower()
    if suffix not in _READERS:
        shown = repr(suffix) if suffix else "(no suffix)"
        supported = " and ".join(_READERS)
        problem = f"unknown file type {shown}; molgen reads and writes {supported} files"
        raise MoleculeFileError(path, None, problem)
    return suffix


def read_molecules(path: PathLike) -> list[Molecule]:
    """Read a .xyz or .sdf file, chosen by its suffix."""
    return _READERS[_suffix(path)](path)


def write_molecules(path: PathLike, molecules: Iterable[Any], names: Sequence[str] | None = None) -> None:
    """Write a .xyz or .sdf file, chosen by its suffix; `names` become the XYZ comments or SDF names."""
    _WRITERS[_suffix(path)](path, molecules, names)


def read_fragment(source: FragmentSource) -> Molecule:
    """The fragment to sample around: the one molecule of an .xyz/.sdf file, or a (positions, atom types) pair;
    MolgenError naming what is wrong (MoleculeFileError, a MolgenError, for the file's own faults)."""
    if isinstance(source, str | os.PathLike):
        molecules = read_molecules(source)
        if len(molecules) != 1:
            raise MolgenError(f"the fragment file {source} holds {len(molecules)} molecules; give one")
        return molecules[0]
    try:
        return checked_molecule("the fragment", source)
    except ValueError as error:
        raise MolgenError(str(error)) from None
