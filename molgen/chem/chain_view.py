"""A fixed 3D view of one molecule's denoising chain, drawn with Pillow: one panel per frame.

Every frame is seen with the same rotation and scale: the principal axes of the finished molecule (its largest
spread across the panel, its smallest along the line of sight) and the scale at which every frame fits. So an
atom can be followed from frame to frame. Atoms are shaded discs coloured by their type at that frame (CPK
colours), painted from the back to the front; bonds are EDM's rule at that frame, drawn as one, two or three lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from molgen.chem.bonds import bond_order_matrix
from molgen.elements import ELEMENTS

COLOURS = ((236, 236, 236), (70, 70, 70), (48, 80, 248), (225, 30, 30), (70, 190, 70))  # H, C, N, O, F (CPK)
RADII = np.array([0.30, 0.48, 0.46, 0.44, 0.42])  # drawn radius in Å per type (H, C, N, O, F)
BOND_COLOUR = (110, 110, 110)
LABEL_HEIGHT = 24  # pixels of caption under each panel
SUPERSAMPLE = 3  # panels are drawn this many times larger, then scaled down (smooth edges)


def principal_axes(positions: np.ndarray) -> np.ndarray:
    """The rotation [3, 3] whose columns are the principal axes of positions [N, 3], largest spread first
    (right-handed: the third column points towards the viewer)."""
    centred = positions - positions.mean(axis=0)  # [N, 3]
    _, vectors = np.linalg.eigh(centred.T @ centred)  # columns in ascending order of spread
    rotation = vectors[:, ::-1].copy()  # [3, 3]
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1
    return rotation


@dataclass(frozen=True)
class ChainView:
    """One camera for every frame: rotation [3, 3], pixels per Å and the panel's (width, height) in pixels."""

    rotation: np.ndarray
    pixels_per_angstrom: float
    size: tuple[int, int]

    @classmethod
    def fit(cls, frames: Sequence[np.ndarray], size: tuple[int, int] = (250, 200)) -> ChainView:
        """The view of the last frame's principal axes at the scale at which every frame fits the panel."""
        rotation = principal_axes(np.asarray(frames[-1], dtype=np.float64))
        across, up = np.max([np.abs(_centred(x) @ rotation)[:, :2].max(axis=0) for x in frames], axis=0)  # Å
        margin = RADII.max()
        scale = min((size[0] / 2 - 6) / (across + margin), (size[1] / 2 - 6) / (up + margin))
        return cls(rotation, scale, size)

    def render(self, positions: np.ndarray, atom_types: np.ndarray) -> Image.Image:
        """One frame as an RGB panel: bonds by EDM's rule, atoms coloured by type, nearer atoms in front."""
        positions = np.asarray(positions, dtype=np.float64)  # [N, 3]
        types = np.asarray(atom_types, dtype=np.intp)  # [N]
        scale = self.pixels_per_angstrom * SUPERSAMPLE
        width, height = (SUPERSAMPLE * side for side in self.size)
        view = _centred(positions) @ self.rotation  # [N, 3]: across, up, towards the viewer
        xy = np.stack([width / 2 + scale * view[:, 0], height / 2 - scale * view[:, 1]], axis=1)  # [N, 2] pixels
        radii = scale * RADII[types]  # [N]
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for _, kind, item in sorted(_painter_items(view[:, 2], bond_order_matrix(positions, types))):
            if kind == "bond":
                _draw_bond(draw, xy, radii, *item)
            else:
                _draw_atom(draw, xy[item], radii[item], COLOURS[types[item]])
        return image.resize(self.size, Image.LANCZOS)


def _centred(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)  # [N, 3]
    return positions - positions.mean(axis=0)


def _painter_items(depth: np.ndarray, orders: np.ndarray) -> list[tuple[float, str, object]]:
    """Atoms at their depth and bonds at the mean depth of their atoms, to be painted in sorted order (far first)."""
    items: list[tuple[float, str, object]] = [(float(z), "atom", i) for i, z in enumerate(depth)]
    for i, j in zip(*np.nonzero(np.triu(orders))):
        items.append((float(depth[i] + depth[j]) / 2, "bond", (int(i), int(j), int(orders[i, j]))))
    return items


def _draw_bond(draw: ImageDraw.ImageDraw, xy: np.ndarray, radii: np.ndarray, i: int, j: int, order: int) -> None:
    """A bond of 1, 2 or 3 parallel lines between the rims of atoms i and j (nothing if the discs overlap)."""
    direction = xy[j] - xy[i]
    length = float(np.hypot(*direction))
    if length <= 0.8 * (radii[i] + radii[j]):
        return
    unit = direction / length
    normal = np.array([-unit[1], unit[0]])
    start, end = xy[i] + 0.8 * radii[i] * unit, xy[j] - 0.8 * radii[j] * unit
    gap, width = 2.2 * SUPERSAMPLE, (3 if order == 1 else 2) * SUPERSAMPLE
    for k in range(order):
        shift = (k - (order - 1) / 2) * gap * normal
        draw.line([tuple(start + shift), tuple(end + shift)], fill=BOND_COLOUR, width=width)


def _draw_atom(draw: ImageDraw.ImageDraw, centre: np.ndarray, radius: float, colour: tuple[int, int, int]) -> None:
    """A disc with a darker rim and a highlight towards the upper left (a ball lit from there)."""
    x, y = centre
    rim = tuple(int(0.55 * c) for c in colour)
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=rim, width=SUPERSAMPLE)
    light = tuple(int(c + 0.55 * (255 - c)) for c in colour)
    r, dx = 0.35 * radius, 0.3 * radius
    draw.ellipse([x - dx - r, y - dx - r, x - dx + r, y - dx + r], fill=light)


def captioned(panel: Image.Image, caption: str) -> Image.Image:
    """The panel with a centred caption line under it (shortened with '…' to fit)."""
    font = ImageFont.load_default(size=13)
    image = Image.new("RGB", (panel.width, panel.height + LABEL_HEIGHT), "white")
    image.paste(panel, (0, 0))
    draw = ImageDraw.Draw(image)
    text = caption
    while len(text) > 1 and draw.textlength(text, font=font) > panel.width - 8:
        text = text[:-2] + "…"
    x = (panel.width - draw.textlength(text, font=font)) / 2
    draw.text((x, panel.height + 4), text, fill="black", font=font)
    return image


def colour_key(width: int) -> Image.Image:
    """A row naming the atom colours: a disc and the element symbol for H, C, N, O and F."""
    font = ImageFont.load_default(size=13)
    image = Image.new("RGB", (width, LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    x = 8
    for symbol, colour in zip(ELEMENTS, COLOURS):
        draw.ellipse([x, 6, x + 12, 18], fill=colour, outline=tuple(int(0.55 * c) for c in colour))
        draw.text((x + 16, 4), symbol, fill="black", font=font)
        x += 44
    return image


def stacked(images: Sequence[Image.Image], horizontal: bool) -> Image.Image:
    """Images side by side (left to right) or one above the other, on white."""
    width = sum(i.width for i in images) if horizontal else max(i.width for i in images)
    height = max(i.height for i in images) if horizontal else sum(i.height for i in images)
    canvas = Image.new("RGB", (width, height), "white")
    offset = 0
    for image in images:
        canvas.paste(image, (offset, 0) if horizontal else (0, offset))
        offset += image.width if horizontal else image.height
    return canvas
