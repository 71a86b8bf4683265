"""Pictures of molecules with RDKit: a grid of 2D depictions labelled with SMILES, and a denoising-chain strip.

Bonds everywhere are EDM's distance rule (molgen.chem.bonds), so a picture shows exactly what the metrics scored.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from rdkit import Chem, rdBase
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D

from molgen.atomic import atomic_write
from molgen.chem.bonds import bond_order_matrix
from molgen.chem.chain_view import ChainView, captioned, colour_key, stacked
from molgen.chem.metrics import (
    Molecule,
    MoleculeCheck,
    build_molecule,
    check_molecule,
    largest_fragment,
    sanitize,
)

PANEL = (250, 200)  # pixels per molecule (width, height)
FIXED_PROP = "molgen_fixed"  # marks an atom of a fixed fragment; survives hydrogen and fragment removal


def molecule_to_rdkit(positions: np.ndarray, atom_types: np.ndarray) -> Chem.Mol:
    """An RDKit molecule with EDM's bonds and a 3D conformer; sanitised when possible, else left unsanitised.

    Shapes: positions [N, 3] (Å), atom_types [N] (indices into ELEMENTS).
    """
    types = np.asarray(atom_types, dtype=np.intp)  # [N]
    positions = np.asarray(positions, dtype=np.float64)  # [N, 3]
    mol = build_molecule(types, bond_order_matrix(positions, types))
    conformer = Chem.Conformer(len(types))
    for index, xyz in enumerate(positions.tolist()):
        conformer.SetAtomPosition(index, xyz)
    mol.AddConformer(conformer, assignId=True)
    if sanitize(mol) is not None:
        mol.UpdatePropertyCache(strict=False)
    return mol.GetMol()


def _depiction(positions: np.ndarray, atom_types: np.ndarray, valid: bool, fixed_atoms: int = 0) -> Chem.Mol:
    """A 2D depiction: the valid molecule's largest fragment without hydrogens, else all atoms unsanitised.

    The first `fixed_atoms` atoms are marked with FIXED_PROP.
    """
    mol = molecule_to_rdkit(positions, atom_types)
    for index in range(fixed_atoms):
        mol.GetAtomWithIdx(index).SetBoolProp(FIXED_PROP, True)
    if valid:
        heavy = _without_hydrogens(largest_fragment(mol))
        mol = heavy if heavy.GetNumAtoms() else mol
    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    rdDepictor.Compute2DCoords(mol)
    return mol


def _without_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """Hydrogens removed; sanitised when possible, so the implicit ones are drawn as OH, NH2, ..."""
    with rdBase.BlockLogs():
        try:
            return Chem.RemoveHs(mol)
        except Exception:  # noqa: BLE001 (RDKit raises several types; a fragment that does not sanitise)
            return Chem.RemoveHs(mol, sanitize=False)


def grid_legend(depiction: Chem.Mol, check: MoleculeCheck) -> str:
    """The label under a molecule: the SMILES of its depiction (hydrogens implicit) or 'invalid', and 'stable'."""
    text = Chem.MolToSmiles(depiction) if check.valid else "invalid"
    return f"{text}  (stable)" if check.stable else text


def _draw(
    mols: Sequence[Chem.Mol], legends: Sequence[str], columns: int, highlight: Sequence[bool],
    highlight_atoms: Sequence[list[int]] | None = None,
) -> bytes:
    """PNG bytes of `mols` in a grid with `columns` panels per row; highlighted panels get a green frame.

    highlight_atoms: per molecule, atom indices to highlight (RDKit's highlight, bonds between them too).
    """
    rows = -(-len(mols) // columns)
    width, height = PANEL
    drawer = rdMolDraw2D.MolDraw2DCairo(width * columns, height * rows, width, height)
    options = drawer.drawOptions()
    options.legendFontSize = 14
    options.prepareMolsBeforeDrawing = False
    with rdBase.BlockLogs():
        drawer.DrawMolecules(list(mols), legends=list(legends),
                             highlightAtoms=None if highlight_atoms is None else list(highlight_atoms))
    for index, marked in enumerate(highlight):
        if marked:
            _frame(drawer, index % columns, index // columns)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def _frame(drawer: rdMolDraw2D.MolDraw2D, column: int, row: int) -> None:
    """A green rectangle around one panel (marks stable molecules)."""
    from rdkit.Geometry import Point2D

    width, height = PANEL
    drawer.SetColour((0.1, 0.6, 0.2))
    drawer.SetLineWidth(4)
    drawer.SetFillPolys(False)
    drawer.DrawRect(Point2D(column * width + 3, row * height + 3), Point2D((column + 1) * width - 3,
                                                                          (row + 1) * height - 3), rawCoords=True)


def draw_grid(
    path: str | Path, molecules: Sequence[Molecule], checks: Sequence[MoleculeCheck], columns: int = 6,
    fixed_atoms: int = 0,
) -> None:
    """Write a PNG grid of 2D depictions labelled with SMILES; stable molecules are framed in green and marked.

    Valid molecules show their largest fragment (the one the metrics' SMILES describes) without hydrogens.
    The first `fixed_atoms` atoms of every molecule (a fixed fragment) are highlighted.
    """
    if not molecules:
        raise ValueError("draw_grid needs at least one molecule")
    depictions = [_depiction(x, types, check.valid, fixed_atoms)
                  for (x, types), check in zip(molecules, checks, strict=True)]
    legends = [grid_legend(mol, check) for mol, check in zip(depictions, checks)]
    fixed = [[atom.GetIdx() for atom in mol.GetAtoms() if atom.HasProp(FIXED_PROP)] for mol in depictions]
    png = _draw([_prepared(mol) for mol in depictions], legends, min(columns, len(depictions)),
                [check.stable for check in checks], fixed if fixed_atoms else None)
    with atomic_write(path, "wb") as handle:
        handle.write(png)


def depiction_svg(
    positions: np.ndarray, atom_types: np.ndarray, valid: bool, fixed_atoms: int = 0, size: tuple[int, int] = (220, 170)
) -> str:
    """The 2D depiction of `draw_grid` as an SVG element (no XML header, transparent background, text as paths).

    The first `fixed_atoms` atoms (a fixed fragment) are highlighted.
    """
    mol = _depiction(positions, atom_types, valid, fixed_atoms)
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    options = drawer.drawOptions()
    options.prepareMolsBeforeDrawing = False
    options.clearBackground = False
    fixed = [atom.GetIdx() for atom in mol.GetAtoms() if atom.HasProp(FIXED_PROP)]
    with rdBase.BlockLogs():
        drawer.DrawMolecule(_prepared(mol), highlightAtoms=fixed or None)
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    return text[text.index("<svg"):]


def _prepared(mol: Chem.Mol) -> Chem.Mol:
    """Prepare a molecule for drawing without kekulising (unsanitised molecules may not kekulise)."""
    with rdBase.BlockLogs():
        return rdMolDraw2D.PrepareMolForDrawing(mol, kekulize=False, addChiralHs=False)


def draw_chain(path: str | Path, frames: Sequence[Molecule], labels: Sequence[str]) -> None:
    """Write a denoising chain as a PNG strip (one panel per frame, left to right) or, for a .gif path, an animation.

    The frames are seen in one fixed 3D view (`molgen.chem.chain_view`): atoms coloured by their type at that
    frame, bonds by EDM's rule at that frame. A last panel shows the finished molecule (the last frame) as its 2D
    depiction, labelled with its SMILES as in the grid; a row under the panels names the atom colours.
    """
    if not frames:
        raise ValueError("draw_chain needs at least one frame")
    view = ChainView.fit([x for x, _ in frames], PANEL)
    panels = [captioned(view.render(x, types), label) for (x, types), label in zip(frames, labels, strict=True)]
    panels.append(_final_depiction(*frames[-1]))
    if str(path).lower().endswith(".gif"):
        _write_gif(path, [stacked([panel, colour_key(panel.width)], horizontal=False) for panel in panels])
        return
    strip = stacked(panels, horizontal=True)
    with atomic_write(path, "wb") as handle:
        stacked([strip, colour_key(strip.width)], horizontal=False).save(handle, format="PNG")


def _final_depiction(positions: np.ndarray, atom_types: np.ndarray) -> Image.Image:
    """The finished molecule as a chain panel: its 2D depiction (as in the grid), captioned with its SMILES."""
    check = check_molecule(positions, atom_types)
    mol = _depiction(positions, atom_types, check.valid)
    drawer = rdMolDraw2D.MolDraw2DCairo(*PANEL)
    drawer.drawOptions().prepareMolsBeforeDrawing = False
    with rdBase.BlockLogs():
        drawer.DrawMolecule(_prepared(mol))
    drawer.FinishDrawing()
    panel = Image.open(io.BytesIO(drawer.GetDrawingText())).convert("RGB")
    return captioned(panel, grid_legend(mol, check))


def _write_gif(path: str | Path, images: Sequence[Image.Image], milliseconds: int = 400) -> None:
    """An animated GIF of the images (the last one held for 3 s), written atomically."""
    durations = [milliseconds] * (len(images) - 1) + [3000]
    with atomic_write(path, "wb") as handle:
        images[0].save(handle, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
