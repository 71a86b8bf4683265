"""One card per molecule: the data the 3D viewer draws, the RDKit 2D depiction, the SMILES and the flags.

A card's flags come from one row of `molgen.chem.table.molecule_rows` (`stable`, `valid`, `unique`, `connected`,
and when computed `strain_kcal_mol` and `posebusters_failed`); rows without some of these keys show fewer flags.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.chain_view import principal_axes
from molgen.chem.draw import depiction_svg

# (row key, what a molecule whose key is false fails), in the order the flags are shown
FAILURES = (("stable", "not stable"), ("valid", "not valid"), ("connected", "not connected"))
POSEBUSTERS = "PoseBusters: "  # prefix of a failed PoseBusters check's name
_SVG_EXTRAS = re.compile(r"\s+(?:xmlns(?::\w+)?|version|baseProfile|xml:space|class)='[^']*'")  # not needed inline


def viewer_molecule(
    positions: np.ndarray, atom_types: np.ndarray, order: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
) -> dict[str, list]:
    """The viewer's form of a molecule: element indices `e`, positions `x` (Å, 3 decimals, flattened) centred and
    turned into its principal axes (or by `rotation` [3, 3]), and bonds `b` as [i, j, order].

    The bonds are `order` [N, N], by default EDM's distance rule: the bonds `molecules.sdf` holds.
    """
    x = np.asarray(positions, dtype=np.float64)  # [N, 3]
    types = np.asarray(atom_types, dtype=np.intp)  # [N]
    order = bond_order_matrix(x, types) if order is None else np.asarray(order)  # [N, N]
    rotation = principal_axes(x) if rotation is None else rotation  # [3, 3]
    shown = (x - x.mean(axis=0)) @ rotation  # [N, 3]
    bonds = [[int(i), int(j), int(order[i, j])] for i, j in zip(*np.nonzero(np.triu(order, k=1)))]
    return {"e": types.tolist(), "x": np.round(shown, 3).ravel().tolist(), "b": bonds}


def readable_smiles(smiles: str) -> str:
    """EDM's SMILES (explicit hydrogens) with the hydrogens implicit, as grid.png labels molecules."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
    return Chem.MolToSmiles(mol) if mol is not None else smiles


def failed_checks(row: Mapping[str, Any]) -> list[str]:
    """The checks a molecule fails: not stable, not valid, not connected (where the row has them), then each
    failed PoseBusters check."""
    failed = [name for key, name in FAILURES if key in row and not row[key]]
    return failed + [POSEBUSTERS + check for check in (row.get("posebusters_failed") or "").split(";") if check]


def _flags(row: Mapping[str, Any], failed: list[str]) -> str:
    """The flag badges: what the molecule is (stable, valid, unique), its strain, then what it fails."""
    badges = [f'<span class="flag">{key}</span>' for key in ("stable", "valid", "unique") if row.get(key)]
    if row.get("valid") and "unique" in row and not row["unique"]:
        badges.append('<span class="flag repeat">repeated SMILES</span>')
    if row.get("strain_kcal_mol") is not None:
        badges.append(f'<span class="flag">strain {row["strain_kcal_mol"]:.1f} kcal/mol</span>')
    badges += [f'<span class="flag fails">{html.escape(name)}</span>' for name in failed]
    return "".join(badges)


def card_html(row: Mapping[str, Any], svg: str) -> str:
    """One molecule's card: an empty 3D slot (the page lends it a canvas while on screen), the 2D depiction, the
    SMILES and the flags; its data attributes are what the filters read."""
    failed = failed_checks(row)
    smiles = row.get("smiles") or ""
    shown = html.escape(readable_smiles(smiles))
    attributes = (f'data-index="{row["index"]}" data-stable="{int(bool(row.get("stable")))}" '
                  f'data-valid="{int(bool(row.get("valid")))}" data-fails="{html.escape("|".join(failed))}" '
                  f'data-smiles="{shown} {html.escape(smiles)}"')
    return (f'<div class="card{" stable" if row.get("stable") else ""}" {attributes}><div class="view"></div>'
            f'<div class="depiction">{svg}</div><div class="index">#{row["index"]}</div>'
            f'<div class="smiles" title="{html.escape(smiles)}">{shown or "(invalid: no SMILES)"}</div>'
            f'<div class="flags">{_flags(row, failed)}</div></div>')


def molecule_card(
    positions: np.ndarray, atom_types: np.ndarray, row: Mapping[str, Any], fixed_atoms: int = 0,
    order: np.ndarray | None = None,
) -> tuple[dict[str, list], str]:
    """(the viewer's molecule, the card's HTML) of one molecule; the first `fixed_atoms` atoms are highlighted."""
    svg = _SVG_EXTRAS.sub("", depiction_svg(positions, atom_types, bool(row.get("valid")), fixed_atoms))
    return viewer_molecule(positions, atom_types, order), card_html(row, svg)
