"""How QM9's coordinate frames are oriented: are the molecules' principal axes aligned with x, y, z?

PONITA's fixed grid of 8 orientations is only approximately rotation-equivariant, so a model trained on molecules
that always sit in one kind of frame may learn that frame. For each training molecule this computes the principal
axes of its mass-weighted inertia tensor (atomic masses of H, C, N, O, F; positions centred on the centre of
mass) and the largest |cosine| between each axis and the coordinate axes, and compares the distribution with the
one of uniformly random rotations (same number of draws, seed 0).

    python eval/qm9_frames.py [--out eval/qm9_frames.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from molgen.data.qm9 import QM9Dataset

MASSES = np.array([1.008, 12.011, 14.007, 15.999, 18.998])  # H, C, N, O, F


def principal_axes(positions: np.ndarray, atom_types: np.ndarray) -> np.ndarray:
    """Unit principal axes as the rows of [3, 3], by increasing moment of inertia."""
    mass = MASSES[atom_types]  # [N]
    centred = positions - (mass[:, None] * positions).sum(0) / mass.sum()  # [N, 3]
    second = (mass[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)  # [3, 3]
    inertia = np.trace(second) * np.eye(3) - second  # [3, 3]
    _, vectors = np.linalg.eigh(inertia)  # columns, increasing
    return vectors.T  # [3, 3]


def alignment(axes: np.ndarray) -> np.ndarray:
    """max_k |axis . e_k| of each axis, [..., 3]: 1 when an axis lies along x, y or z."""
    return np.abs(axes).max(axis=-1)


def random_axes(count: int, seed: int = 0) -> np.ndarray:
    """Rows of uniformly random rotation matrices (QR of Gaussian matrices, signs fixed), [count, 3, 3]."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def table(data: np.ndarray, reference: np.ndarray) -> str:
    """Markdown: per axis, the fraction within 1 degree of a coordinate axis (|cos| > cos 1 deg) and quartiles."""
    near = np.cos(np.radians(1.0))
    rows = ["| axis (by moment) | QM9: within 1° of x/y/z | QM9: median max cos | random: within 1° | "
            "random: median max cos |", "|---|---|---|---|---|"]
    for k, name in enumerate(("smallest", "middle", "largest")):
        rows.append(f"| {name} | {100 * (data[:, k] > near).mean():.1f}% | {np.median(data[:, k]):.4f} | "
                    f"{100 * (reference[:, k] > near).mean():.1f}% | {np.median(reference[:, k]):.4f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    train = QM9Dataset("train")
    molecules = train.molecules()
    data = np.stack([alignment(principal_axes(x, types)) for x, types in molecules])  # [D, 3]
    reference = alignment(random_axes(len(molecules)))  # [D, 3]
    text = (f"QM9 training split ({len(molecules):,} molecules): alignment of the principal axes of inertia with "
            f"the coordinate axes, against uniformly random rotations.\n\n{table(data, reference)}\n")
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
