"""QM9 from the `qm9pack` CSVs, cached as arrays, with EDM's train/valid/test split.

The 130,831 characterised molecules are read in GDB-9 index order, their positions centred on the unweighted
centroid, and cached in one `.npz` file whose checksum, format version and source fingerprint are checked on
every load (a corrupt or stale cache is rebuilt, never used). EDM's split (from Cormorant's preprocessing):
`np.random.seed(0); perm = np.random.permutation(130831)`; train = perm[:100000],
valid = perm[100000:117748], test = perm[117748:].
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from molgen.atomic import atomic_write
from molgen.data.packed import PackedMolecules
from molgen.elements import TYPE_INDEX
from molgen.errors import DataError, MolgenError

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
NUM_MOLECULES = 130_831
SPLIT_SIZES = {"train": 100_000, "valid": 17_748, "test": 13_083}
SPLITS = tuple(SPLIT_SIZES)
CSV_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
PROPERTY_COLUMNS = (
    "RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au", "LUMO_au",
    "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
    "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K",
)
_ARRAYS = ("index", "num_atoms", "positions", "atom_type", "properties")


def cache_dir() -> Path:
    """Where molgen caches processed data: $MOLGEN_CACHE_DIR, else $XDG_CACHE_HOME/molgen, else ~/.cache/molgen."""
    if os.environ.get("MOLGEN_CACHE_DIR"):
        return Path(os.environ["MOLGEN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "molgen"


def qm9pack_csv_paths() -> list[Path]:
    """The qm9pack CSV files, found without importing qm9pack (its import fails on current setuptools)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or spec.origin is None:
        raise DataError("the QM9 data package is not installed: pip install 'molgen[data]' (or qm9pack)")
    paths = [Path(spec.origin).parent / "data" / name for name in CSV_PARTS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"the qm9pack installation lacks {', '.join(missing)}; reinstall qm9pack")
    return paths


def source_fingerprint(paths: list[Path]) -> str:
    """Names and sizes of the source CSVs: a changed qm9pack invalidates the cache."""
    return ";".join(f"{p.name}:{p.stat().st_size}" for p in paths)


# ----------------------------------------------------------------------------------------------- parsing


def parse_elements(text: str) -> list[str]:
    """Parse qm9pack's `Elements` field, a Python list of quoted symbols such as "['C','H']"."""
    return [s.strip().strip("'\"") for s in text.strip().removeprefix("[").removesuffix("]").split(",")]


def parse_xyz(text: str) -> np.ndarray:
    """Parse qm9pack's `XYZ_Ang` field, a Python list of [x, y, z] lists (numbers like `0.` occur).

    Equivalent to `np.array(ast.literal_eval(text))` (a test checks this) but 20x faster: `float` reads
    every Python float literal, and anything not shaped [[x,y,z], ...] is rejected. Returns float64 [N, 3].
    """
    compact = "".join(text.split())
    if not (compact.startswith("[[") and compact.endswith("]]")):
        raise ValueError("not a list of [x, y, z] triples")
    triples = [group.split(",") for group in compact[2:-2].split("],[")]
    if any(len(triple) != 3 for triple in triples):
        raise ValueError("not a list of [x, y, z] triples")
    return np.array([[float(v) for v in triple] for triple in triples], dtype=np.float64)  # [N, 3]


@dataclass(frozen=True)
class QM9Arrays:
    """All of QM9 as flat arrays, molecules in GDB-9 index order.

    Attributes:
        index: GDB-9 index (1-based) [B]; num_atoms [B]; positions float64 Å, centroid-free [M, 3];
        atom_type index into ELEMENTS [M]; properties float64 [B, P] named by PROPERTY_COLUMNS.
    """

    index: np.ndarray
    num_atoms: np.ndarray
    positions: np.ndarray
    atom_type: np.ndarray
    properties: np.ndarray

    @property
    def ptr(self) -> np.ndarray:
        """Offsets of each molecule's atoms [B + 1]."""
        return np.concatenate([[0], np.cumsum(self.num_atoms, dtype=np.int64)])


def _read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of one qm9pack CSV with their line numbers."""
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"Index", "N_atoms", "Elements", "XYZ_Ang", *PROPERTY_COLUMNS} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            yield reader.line_num, row


def _parse_row(row: dict[str, str]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One molecule: GDB index, positions [N, 3], atom types [N], properties [P]."""
    symbols = parse_elements(row["Elements"])
    positions = parse_xyz(row["XYZ_Ang"])
    if len(symbols) != int(row["N_atoms"]) or positions.shape[0] != len(symbols):
        raise ValueError(f"N_atoms={row['N_atoms']} but {len(symbols)} elements and {positions.shape[0]} positions")
    unknown = sorted(set(symbols) - set(TYPE_INDEX))
    if unknown:
        raise ValueError(f"unknown elements {unknown}")
    if not np.isfinite(positions).all():
        raise ValueError("non-finite coordinates")
    types = np.array([TYPE_INDEX[s] for s in symbols], dtype=np.int8)
    properties = np.array([float(row[c]) for c in PROPERTY_COLUMNS], dtype=np.float64)
    return int(row["Index"]), positions - positions.mean(axis=0), types, properties


def read_qm9_csvs(paths: list[Path], progress: bool = True) -> QM9Arrays:
    """Parse the qm9pack CSVs into arrays; every malformed row is reported with its file and line."""
    from tqdm import tqdm

    index, num_atoms, positions, types, properties = [], [], [], [], []
    with tqdm(total=NUM_MOLECULES, desc="parsing QM9", unit="mol", disable=not progress) as bar:
        for path in paths:
            for line, row in _read_csv_rows(path):
                try:
                    gdb, pos, typ, prop = _parse_row(row)
                except (ValueError, KeyError) as err:
                    raise DataError(f"{path}, line {line}: {err}") from None
                index.append(gdb)
                num_atoms.append(len(typ))
                positions.append(pos)
                types.append(typ)
                properties.append(prop)
                bar.update()
    order = np.argsort(np.array(index), kind="stable")
    if len(index) != NUM_MOLECULES:
        raise DataError(f"expected {NUM_MOLECULES} molecules in the qm9pack CSVs, found {len(index)}")
    return QM9Arrays(
        index=np.array(index, dtype=np.int64)[order],
        num_atoms=np.array(num_atoms, dtype=np.int64)[order],
        positions=np.concatenate([positions[i] for i in order]),
        atom_type=np.concatenate([types[i] for i in order]),
        properties=np.stack(properties)[order],
    )


# ------------------------------------------------------------------------------------------------- cache


def _checksum(arrays: QM9Arrays) -> str:
    """SHA-256 over the arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in _ARRAYS:
        value = np.ascontiguousarray(getattr(arrays, name))
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _write_cache(path: Path, arrays: QM9Arrays, fingerprint: str) -> None:
    """Write the cache atomically, with its format version, source fingerprint and checksum."""
    meta = np.array([str(CACHE_FORMAT_VERSION), fingerprint, _checksum(arrays)])
    with atomic_write(path, "wb") as handle:
        np.savez(handle, meta=meta, **{name: getattr(arrays, name) for name in _ARRAYS})


def _read_cache(path: Path, fingerprint: str | None) -> QM9Arrays | None:
    """Load the cache if it is intact and current (any source when `fingerprint` is None), else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            version, stored_fingerprint, checksum = (str(v) for v in data["meta"])
            arrays = QM9Arrays(**{name: data[name] for name in _ARRAYS})
    except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt
        log.warning("QM9 cache %s is unreadable (%s); rebuilding it", path, err)
        return None
    if version != str(CACHE_FORMAT_VERSION) or fingerprint not in (None, stored_fingerprint):
        log.warning("QM9 cache %s is stale (format %s, source %s); rebuilding it", path, version, stored_fingerprint)
        return None
    if _checksum(arrays) != checksum:
        log.warning("QM9 cache %s fails its checksum; rebuilding it", path)
        return None
    return arrays


class CacheError(MolgenError):
    """The cache must be built but its folder cannot hold it (a file in the way, a read-only folder)."""


def check_cache_folder(folder: Path, what: str) -> None:
    """Raise CacheError unless `folder` is, or can be made, a folder that accepts the new file `what` names (its
    nearest existing folder is probed with a temporary file; nothing is left behind)."""
    _check_not_blocked(folder)
    try:
        with tempfile.TemporaryFile(dir=_nearest_existing(folder)):
            pass
    except OSError as err:
        raise CacheError(f"{what} must be built in {folder}, which cannot be written ({_why(err)}): build it "
                         "once where it can be written, or choose another cache folder") from None


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (so that concurrent first runs build the cache once)."""
    check_cache_folder(path.parent, "the QM9 cache")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError as err:
        raise CacheError(f"cannot lock the QM9 cache in {path.parent} to build it: {_why(err)}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_path(directory: Path | None = None) -> Path:
    """The QM9 cache file."""
    return (directory or cache_dir()) / f"qm9_v{CACHE_FORMAT_VERSION}.npz"


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Which file `path` is now (inode, size, modification time), None if there is none: a rebuilt cache differs."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def check_cache(directory: Path | None = None) -> None:
    """CacheError now if the cache is missing and its folder cannot take it (or is a file); creates nothing.

    A cheap early check for commands that need the data only after long work (an intact cache passes).
    """
    path = cache_path(directory)
    _check_not_blocked(path.parent)
    if not path.exists() and importlib.util.find_spec("qm9pack") is not None:
        check_cache_folder(path.parent, "the QM9 cache")


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (as a file or a folder)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_not_blocked(folder: Path) -> None:
    """CacheError if a regular file stands at `folder` or at its nearest existing ancestor."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        where = "" if existing == folder else f" cannot be used: {existing}"
        raise CacheError(f"the QM9 cache folder {folder}{where} is a file, not a folder")


def load_qm9_arrays(directory: Path | None = None, rebuild: bool = False, progress: bool = True) -> QM9Arrays:
    """All of QM9 from the cache, building (or rebuilding) it from the qm9pack CSVs when needed.

    An intact, current cache is read without a lock (it is only ever replaced whole by a rename), so a read-only
    shared cache serves; building takes the folder's lock and needs a writable folder (CacheError naming it).
    """
    path = cache_path(directory)
    _check_not_blocked(path.parent)
    try:
        sources = qm9pack_csv_paths()
    except DataError:
        if rebuild or not path.exists():
            raise
        sources = None  # no qm9pack here: an intact cache is still usable
    fingerprint = None if sources is None else source_fingerprint(sources)
    seen = _identity(path)
    arrays = None if rebuild or seen is None else _read_cache(path, fingerprint)
    if arrays is not None:
        return arrays
    if sources is None:
        raise DataError(f"the QM9 cache {path} is unusable and qm9pack is not installed to rebuild it")
    with _exclusive_lock(path.with_suffix(".lock")):
        if not rebuild and _identity(path) not in (None, seen):  # another process built it meanwhile
            arrays = _read_cache(path, fingerprint)
        if arrays is None:
            arrays = _build_cache(path, sources, fingerprint, progress)
    return arrays


def _build_cache(path: Path, sources: list[Path], fingerprint: str, progress: bool) -> QM9Arrays:
    """Parse the CSVs and write the cache; CacheError if the cache folder refuses the file."""
    if progress:
        print(f"building the QM9 cache {path} from the qm9pack CSVs (once)", file=sys.stderr)
    arrays = read_qm9_csvs(sources, progress=progress)
    try:
        _write_cache(path, arrays, fingerprint)
    except OSError as err:
        raise CacheError(f"cannot write the QM9 cache {path}: {_why(err)}") from None
    return arrays


def _why(err: OSError) -> str:
    """The system's reason for an OSError, in lower case ("permission denied")."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


# ------------------------------------------------------------------------------------------------- split


def edm_split() -> dict[str, np.ndarray]:
    """EDM's split: positions into the index-sorted list of the 130,831 molecules, per split."""
    perm = np.random.RandomState(0).permutation(NUM_MOLECULES)  # the same stream as np.random.seed(0)
    n_train, n_valid = SPLIT_SIZES["train"], SPLIT_SIZES["valid"]
    return {"train": perm[:n_train], "valid": perm[n_train : n_train + n_valid], "test": perm[n_train + n_valid :]}


class QM9Dataset(PackedMolecules):
    """One split of QM9 (EDM's split of the cached arrays); see `PackedMolecules` for batches."""

    def __init__(self, split: str, directory: Path | None = None, dtype: torch.dtype = torch.float32,
                 arrays: QM9Arrays | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        arrays = arrays if arrays is not None else load_qm9_arrays(directory)
        self.molecule_ids = edm_split()[split]  # [B] positions into the index-sorted list
        ptr = arrays.ptr
        atom_ids = np.concatenate([np.arange(ptr[i], ptr[i + 1]) for i in self.molecule_ids])  # [M]
        super().__init__(
            split,
            num_atoms=torch.from_numpy(arrays.num_atoms[self.molecule_ids]),  # [B]
            positions=torch.from_numpy(arrays.positions[atom_ids]),  # [M, 3] float64
            atom_type=torch.from_numpy(arrays.atom_type[atom_ids].astype(np.int64)),  # [M]
            index=torch.from_numpy(arrays.index[self.molecule_ids]),  # [B]
            dtype=dtype,
        )
        self.properties = torch.from_numpy(arrays.properties[self.molecule_ids])  # [B, P]


def load_splits(directory: Path | None = None, dtype: torch.dtype = torch.float32) -> dict[str, QM9Dataset]:
    """The three EDM splits, reading the cache once."""
    arrays = load_qm9_arrays(directory)
    return {split: QM9Dataset(split, dtype=dtype, arrays=arrays) for split in SPLITS}
