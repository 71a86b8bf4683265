"""The training and validation splits as one compact file, readable without qm9pack (for a machine that lacks it).

An export is an uncompressed `.npz` holding, per split s in ("train", "valid"): `s_positions` float32 [M, 3] (Å,
centroid-free, the cache's float64 positions rounded once), `s_atom_type` uint8 [M] (index into H, C, N, O, F),
`s_offsets` int64 [B + 1] (molecule i's atoms are offsets[i]:offsets[i + 1]) and `s_index` int32 [B] (GDB-9
index), in the split's order; `node_histogram` int64 [30], the atom counts of the whole training split (p(N), also
when only the first molecules of each split are exported); and `meta` = [format version, SHA-256 of the arrays].
Batches read from an export equal the QM9 cache's float32 batches bitwise, so training from either gives the same
run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molgen.atomic import atomic_write
from molgen.data.packed import PackedMolecules
from molgen.data.stats import node_count_histogram
from molgen.elements import ELEMENTS
from molgen.errors import DataError

EXPORT_FORMAT = 1
EXPORT_SPLITS = ("train", "valid")
_FIELDS = ("positions", "atom_type", "offsets", "index")


@dataclass(frozen=True)
class DataExport:
    """A data export read back: the train and valid splits, and the histogram of atom counts for p(N).

    Attributes:
        splits: "train" and "valid" -> their molecules.
        node_histogram: molecules per atom count in the whole training split, int64 [30].
    """

    splits: dict[str, PackedMolecules]
    node_histogram: Tensor


def _export_arrays(dataset: PackedMolecules, count: int) -> dict[str, np.ndarray]:
    """The first `count` molecules of a split as the export's arrays."""
    atoms = int(dataset.ptr[count])
    return {
        "positions": dataset.positions[:atoms].numpy().astype(np.float32),  # [M, 3]
        "atom_type": dataset.atom_type[:atoms].numpy().astype(np.uint8),  # [M]
        "offsets": dataset.ptr[: count + 1].numpy().astype(np.int64),  # [B + 1]
        "index": dataset.index[:count].numpy().astype(np.int32),  # [B]
    }


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the arrays (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def export_splits(
    path: str | Path, splits: Mapping[str, PackedMolecules], max_molecules: int | None = None
) -> dict[str, int]:
    """Write the train and valid splits (the first `max_molecules` of each, default all) to `path` atomically.

    The node-count histogram is always that of the whole training split. Returns the molecules written per split.
    """
    missing = [name for name in EXPORT_SPLITS if name not in splits]
    if missing:
        raise DataError(f"cannot export: the splits {missing} are missing")
    if max_molecules is not None and max_molecules < 1:
        raise DataError(f"the number of molecules to export must be >= 1, got {max_molecules}")
    counts = {name: len(splits[name]) if max_molecules is None else min(max_molecules, len(splits[name]))
              for name in EXPORT_SPLITS}
    arrays = {}
    for name, count in counts.items():
        arrays.update({f"{name}_{key}": value for key, value in _export_arrays(splits[name], count).items()})
    arrays["node_histogram"] = node_count_histogram(splits["train"]).numpy()  # [30] int64
    meta = np.array([str(EXPORT_FORMAT), _checksum(arrays)])
    with atomic_write(path, "wb") as handle:
        np.savez(handle, meta=meta, **arrays)
    return counts


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The export's arrays, checked against its format version and checksum; DataError naming the file if not."""
    if not path.is_file():
        raise DataError(f"{path}: no such data export (write one with `molgen data export {path}`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = [str(v) for v in data["meta"]]
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except Exception as err:  # noqa: BLE001 (zip, format and key errors of a damaged or foreign file mean the same)
        raise DataError(f"{path}: not a readable molgen data export ({type(err).__name__})") from None
    expected = {"node_histogram"} | {f"{split}_{key}" for split in EXPORT_SPLITS for key in _FIELDS}
    if len(meta) != 2 or not set(arrays) & expected:
        raise DataError(f"{path}: not a molgen data export (it holds the arrays {', '.join(sorted(arrays))}, not an "
                        "export's train_* and valid_* arrays); write one with `molgen data export FILE`")
    if meta[0] != str(EXPORT_FORMAT):
        raise DataError(f"{path}: a data export of format {meta[0]}, but this molgen reads format {EXPORT_FORMAT} "
                        "only; export the data again")
    if set(arrays) != expected or _checksum(arrays) != meta[1]:
        raise DataError(f"{path}: the data export is damaged (its arrays do not match its checksum); export it again")
    return arrays


def _split_from_arrays(split: str, arrays: Mapping[str, np.ndarray], dtype: torch.dtype) -> PackedMolecules:
    """One split of an export as a data set; DataError if its arrays are inconsistent."""
    positions, atom_type = arrays[f"{split}_positions"], arrays[f"{split}_atom_type"]
    offsets, index = arrays[f"{split}_offsets"], arrays[f"{split}_index"]
    num_atoms = np.diff(offsets)  # [B]
    consistent = (
        positions.ndim == 2 and positions.shape[1] == 3 and offsets.ndim == 1 and len(offsets) == len(index) + 1
        and len(index) > 0 and offsets[0] == 0 and offsets[-1] == len(positions) == len(atom_type)
        and (num_atoms > 0).all() and (atom_type < len(ELEMENTS)).all()
    )
    if not consistent:
        raise DataError(f"the {split} split of the data export has inconsistent arrays")
    return PackedMolecules(
        split,
        num_atoms=torch.from_numpy(num_atoms.astype(np.int64)),  # [B]
        positions=torch.from_numpy(positions),  # [M, 3] float32
        atom_type=torch.from_numpy(atom_type.astype(np.int64)),  # [M]
        index=torch.from_numpy(index.astype(np.int64)),  # [B]
        dtype=dtype,
    )


def load_export(path: str | Path, dtype: torch.dtype = torch.float32) -> DataExport:
    """The train and valid splits of a data export and its p(N) histogram (no qm9pack and no QM9 cache needed)."""
    path = Path(path)
    arrays = _read_arrays(path)
    try:
        splits = {split: _split_from_arrays(split, arrays, dtype) for split in EXPORT_SPLITS}
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    return DataExport(splits=splits, node_histogram=torch.from_numpy(arrays["node_histogram"].astype(np.int64)))
