"""The reference set of novelty: EDM's training SMILES, computed once and cached beside the QM9 data."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from molgen.atomic import atomic_write
from molgen.data.qm9 import CACHE_FORMAT_VERSION, CacheError, QM9Dataset, cache_dir, cache_path, check_cache_folder

_WHAT = "EDM's training SMILES (for novelty)"


def smiles_path(split: str, directory: Path | None = None) -> Path:
    """The cache file of a split's SMILES."""
    return (directory or cache_dir()) / f"qm9_{split}_smiles_v{CACHE_FORMAT_VERSION}.txt"


def check_training_smiles(directory: Path | None = None) -> None:
    """CacheError now if the training SMILES are not cached and their folder cannot take them (while the QM9 data
    is there to compute them from); creates nothing. A cheap check before long work."""
    path = smiles_path("train", directory)
    data = cache_path(directory).exists() or importlib.util.find_spec("qm9pack") is not None
    if data and not path.exists():
        check_cache_folder(path.parent, _WHAT)


def training_smiles(dataset: QM9Dataset, directory: Path | None = None, progress: bool = True) -> set[str]:
    """EDM's training SMILES for novelty (whole molecules, sanitisable ones only), cached beside the data.

    The cache file `qm9_{split}_smiles_v{CACHE_FORMAT_VERSION}.txt` starts with a hash of the split's positions and
    atom types; a file whose hash differs is recomputed. CacheError (before the ~45 s of RDKit) when it must be
    computed but its folder cannot be written.
    """
    from molgen.chem.metrics import training_smiles as compute  # RDKit: only when the cache misses

    path = smiles_path(dataset.split, directory)
    key = hashlib.sha256(dataset.positions.numpy().tobytes() + dataset.atom_type.numpy().tobytes()).hexdigest()
    if path.exists():
        header, *smiles = path.read_text().splitlines()
        if header == key:
            return set(smiles)
    check_cache_folder(path.parent, _WHAT)
    if progress:
        print(f"computing EDM's training SMILES for novelty, cached as {path} (once)", file=sys.stderr)
    smiles = compute(dataset.molecules(), progress=progress)
    try:
        with atomic_write(path) as handle:
            handle.write("\n".join([key, *sorted(smiles)]) + "\n")
    except OSError as err:
        raise CacheError(f"cannot write EDM's training SMILES to {path}: {err.strerror or err}") from None
    return smiles
