"""The six QM9 properties of EDM's conditional generation, in EDM's units, and EDM's target normalisation.

Units (EDM, Table 3 of Hoogeboom et al. 2022): α in Bohr³; Δε, ε_HOMO and ε_LUMO in meV (the cache stores Hartree:
meV = Hartree × 27,211.4); μ in Debye; Cv in cal/(mol·K).

Normalisation: EDM's `compute_mean_mad_from_dataloader` (ehoogeboom/e3_diffusion_for_molecules, qm9/utils.py):
target = (value − mean) / MAD with MAD = mean |value − mean|. EDM's property classifier
(qm9/property_prediction/main_qm9_prop.py) takes the mean and MAD over its valid split; molgen takes them over the
regressor's own training half (a regressor file is then self-contained; the difference is a few tenths of a MAD
percent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from molgen.data.qm9 import PROPERTY_COLUMNS
from molgen.property.names import PROPERTY_NAMES

HARTREE_TO_MEV = 27_211.4


@dataclass(frozen=True)
class Property:
    """One property: its name (EDM's), the cache column, its unit and the factor from the column's unit."""

    name: str
    column: str
    unit: str
    scale: float = 1.0

    @property
    def column_index(self) -> int:
        """Where the column lies in the cache's property table [B, P]."""
        return PROPERTY_COLUMNS.index(self.column)


PROPERTIES = {
    prop.name: prop
    for prop in (
        Property("alpha", "Polarizability_bohr3", "Bohr^3"),
        Property("gap", "HOMO_LUMO_gap_au", "meV", HARTREE_TO_MEV),
        Property("homo", "HOMO_au", "meV", HARTREE_TO_MEV),
        Property("lumo", "LUMO_au", "meV", HARTREE_TO_MEV),
        Property("mu", "Dipole_debye", "Debye"),
        Property("Cv", "Heatcapacity_Cv_cal_mol_K", "cal/(mol K)"),
    )
}


def get_property(name: str) -> Property:
    """The property `name`; ValueError naming the known ones otherwise."""
    if name not in PROPERTIES:
        raise ValueError(f"unknown property {name!r}; known properties: {', '.join(PROPERTIES)}")
    return PROPERTIES[name]


def property_values(table: np.ndarray, name: str) -> np.ndarray:
    """The property `name` in EDM's unit from a cache property table [B, P] -> float64 [B]."""
    prop = get_property(name)
    return np.asarray(table, dtype=np.float64)[:, prop.column_index] * prop.scale  # [B]


@dataclass(frozen=True)
class Normalisation:
    """EDM's target normalisation: (value − mean) / mad."""

    mean: float
    mad: float

    @classmethod
    def of(cls, values: np.ndarray) -> Normalisation:
        """The mean and mean absolute deviation of `values` [B] (EDM's compute_mean_mad)."""
        values = np.asarray(values, dtype=np.float64)
        mean = float(values.mean())
        return cls(mean=mean, mad=float(np.abs(values - mean).mean()))

    def normalise(self, values):
        return (values - self.mean) / self.mad

    def denormalise(self, targets):
        return targets * self.mad + self.mean
