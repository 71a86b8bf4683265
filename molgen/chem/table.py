"""The per-molecule table: one row of flags and figures per molecule, written as molecules.csv and SD properties.

Row keys: `index`, `smiles` ('' if invalid), `stable`, `valid`, `unique` (valid and the first molecule with its
SMILES), `connected`, `fragments`, and when computed `strain_kcal_mol` and `pose_rmsd` (None where MMFF could not
type the molecule) and `posebusters_failed` (the failed PoseBusters checks joined by ';', '' when all pass).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molgen.atomic import atomic_write

Row = dict[str, Any]


def molecule_rows(
    checks: Sequence[Any],
    fragments: Sequence[int],
    strains: Sequence[Any] | None = None,
    posebusters_failed: Sequence[Sequence[str]] | None = None,
) -> list[Row]:
    """One dict per molecule from EDM's checks (`MoleculeCheck`), fragment counts and, when computed, MMFF strains
    (objects with `.strain` and `.rmsd`, or None) and the names of the PoseBusters checks each molecule failed."""
    seen: set[str | None] = set()
    rows = []
    for index, (check, pieces) in enumerate(zip(checks, fragments, strict=True)):
        unique = check.valid and check.smiles not in seen
        if check.valid:
            seen.add(check.smiles)
        row: Row = {"index": index, "smiles": (check.smiles or "") if check.valid else "", "stable": check.stable,
                    "valid": check.valid, "unique": unique, "connected": pieces == 1, "fragments": int(pieces)}
        if strains is not None:
            strain = strains[index]
            row["strain_kcal_mol"] = None if strain is None else strain.strain
            row["pose_rmsd"] = None if strain is None else strain.rmsd
        if posebusters_failed is not None:
            row["posebusters_failed"] = ";".join(posebusters_failed[index])
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    """A row value as text: '' for None, 'true'/'false' for flags, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def rows_csv(rows: Sequence[Row]) -> str:
    """The rows as CSV text with a header line (the keys of the first row)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow([_cell(value) for value in row.values()])
    return buffer.getvalue()


def write_rows_csv(path: Path, rows: Sequence[Row]) -> None:
    """Write molecules.csv atomically."""
    with atomic_write(path) as handle:
        handle.write(rows_csv(rows))


def sd_properties(row: Row) -> dict[str, str]:
    """A row as SD properties (every key but `index`; the record's position already says it)."""
    return {key: _cell(value) for key, value in row.items() if key != "index"}
