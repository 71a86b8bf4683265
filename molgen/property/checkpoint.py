"""Shipped property regressors: one small self-describing file each (`save_regressor`, `load_regressor`).

A regressor file is a dict saved with `torch.save` (read back with `weights_only=True`):
  format            "molgen-property-regressor"; format_version 1; molgen_version
  model_config      the RegressorConfig as a dict (property, half, noise_conditional, sizes)
  weights           the EMA's state dict (target_mean and target_mad among its buffers)
  metadata          property, unit, normalisation {mean, mad}, half, noise_conditional, schedule {name, timesteps,
                    precision} (the generator's, which a guide's z_t follow), steps, molecules, cpu_seconds,
                    validation {val_mae, val_mae_noisy (guides), num_molecules, unit}, train config (dict)
  histograms        over D_b (EDM's qm9_second_half), for p(N | c) ∝ p(N) Π_k p(c_k | N) without the QM9 cache:
                    node_counts int64 [N_max + 1] (molecules per atom count) and, per atom count N, EDM's
                    DistributionProperty histogram of the property (ehoogeboom/e3_diffusion_for_molecules,
                    qm9/models.py): counts int64 [N_max + 1, bins] over [low_N, high_N] (float64 [N_max + 1] each,
                    the values' min and max at that N; value v falls in bin int((v - low) / (high - low + 1e-12) *
                    bins), the last bin closed), in the property's unit.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgen import __version__
from molgen.atomic import atomic_write
from molgen.data.qm9 import QM9Arrays
from molgen.errors import MolgenError
from molgen.property.halves import edm_halves
from molgen.property.properties import Normalisation, Property, get_property, property_values

REGRESSOR_FORMAT = "molgen-property-regressor"
REGRESSOR_FORMAT_VERSION = 1
HISTOGRAM_BINS = 1000  # EDM's DistributionProperty num_bins
MAX_ATOMS = 29


class RegressorFileError(MolgenError):
    """A regressor file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"regressor {path}: {problem}")


def property_histograms(num_atoms: np.ndarray, values: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """EDM's DistributionProperty: per atom count N, a histogram of the values over [min, max] at that N.

    Shapes: num_atoms [B], values [B] -> node_counts [N_max + 1], counts [N_max + 1, bins], low, high [N_max + 1].
    """
    size = MAX_ATOMS + 1
    counts = np.zeros((size, bins), dtype=np.int64)
    low, high = np.full(size, np.nan), np.full(size, np.nan)
    for n in np.unique(num_atoms):
        found = values[num_atoms == n]  # [B_n]
        low[n], high[n] = found.min(), found.max()
        position = ((found - low[n]) / (high[n] - low[n] + 1e-12) * bins).astype(np.int64)  # [B_n]
        counts[n] = np.bincount(np.minimum(position, bins - 1), minlength=bins)
    return {"node_counts": torch.from_numpy(np.bincount(num_atoms, minlength=size).astype(np.int64)),
            "counts": torch.from_numpy(counts), "low": torch.from_numpy(low), "high": torch.from_numpy(high)}


def second_half_histograms(arrays: QM9Arrays, name: str) -> dict[str, Any]:
    """`property_histograms` of the property `name` over D_b."""
    ids = edm_halves()["second"]
    return property_histograms(arrays.num_atoms[ids], property_values(arrays.properties[ids], name))


def save_regressor(path: str | Path, module: torch.nn.Module, config, histograms: dict[str, Any], *, steps: int,
                   molecules: int, cpu_seconds: float, validation: dict[str, Any]) -> None:
    """Write a regressor file (module docstring) atomically: `module` is the EMA, `config` the run's RunConfig,
    `histograms` those of `second_half_histograms`."""
    regressor = module.config
    prop = get_property(regressor.property)
    metadata = {
        "property": prop.name, "unit": prop.unit, "half": regressor.half,
        "noise_conditional": regressor.noise_conditional,
        "normalisation": {"mean": float(module.target_mean), "mad": float(module.target_mad)},
        "schedule": {"name": "polynomial_2", "timesteps": config.diffusion.timesteps,
                     "precision": config.diffusion.precision},
        "steps": int(steps), "molecules": int(molecules), "cpu_seconds": float(cpu_seconds),
        "validation": {k: validation[k] for k in ("val_mae", "val_mae_noisy", "num_molecules", "unit")
                       if k in validation},
        "train": config.train.to_dict(),
    }
    payload = {"format": REGRESSOR_FORMAT, "format_version": REGRESSOR_FORMAT_VERSION, "molgen_version": __version__,
               "model_config": regressor.to_dict(), "weights": {k: v.detach().cpu() for k, v in
                                                              module.state_dict().items()},
               "metadata": metadata, "histograms": dict(histograms)}
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


@dataclass(frozen=True)
class LoadedRegressor:
    """A regressor read from its file: the module (EMA weights, eval mode, fp32, CPU) and its description."""

    module: torch.nn.Module
    property: Property
    normalisation: Normalisation
    noise_conditional: bool
    metadata: dict[str, Any]
    histograms: dict[str, Any]
    path: Path


def _read(path: Path) -> dict[str, Any]:
    """The payload of a regressor file; RegressorFileError when it is no torch file or not a regressor's."""
    if not path.is_file():
        raise RegressorFileError(path, "no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RegressorFileError(path, f"not a readable torch file ({first[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != REGRESSOR_FORMAT:
        what = "a molgen training checkpoint" if isinstance(payload, dict) and "optimizer" in payload else "a file"
        raise RegressorFileError(path, f"{what}, not a molgen property regressor")
    if payload.get("format_version") != REGRESSOR_FORMAT_VERSION:
        raise RegressorFileError(path, f"format version {payload.get('format_version')!r} is not "
                                       f"{REGRESSOR_FORMAT_VERSION} (written by another molgen version)")
    return payload


def load_regressor(path: str | Path) -> LoadedRegressor:
    """Read a regressor file; RegressorFileError (one line naming the file) when it is missing, corrupt or not a
    property regressor."""
    from molgen.property.regressor import PropertyRegressor, RegressorConfig

    path = Path(path)
    payload = _read(path)
    try:
        module = PropertyRegressor(RegressorConfig.from_dict(payload["model_config"]))
        module.load_state_dict(payload["weights"])
        metadata, histograms = dict(payload["metadata"]), dict(payload["histograms"])
        normalisation = Normalisation(**metadata["normalisation"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RegressorFileError(path, f"its contents do not make a regressor ({first[:120]})") from None
    return LoadedRegressor(module=module.eval(), property=get_property(metadata["property"]),
                           normalisation=normalisation, noise_conditional=module.config.noise_conditional,
                           metadata=metadata, histograms=histograms, path=path)
