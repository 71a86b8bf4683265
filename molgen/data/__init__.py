"""Molecule batches and the QM9 data set with EDM's split."""

from molgen.data.batch import MoleculeBatch, MoleculeLayout

__all__ = ["MoleculeBatch", "MoleculeLayout"]
