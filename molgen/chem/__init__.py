"""Chemistry on generated molecules: EDM's bond rules and sample metrics (stability, validity, novelty).

The names below are imported from their modules on first use, so that `molgen.chem.bonds` and `molgen.chem.io`
work without RDKit (only the metrics need it).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ALLOWED_VALENCE",
    "BOND_LENGTHS_DOUBLE",
    "BOND_LENGTHS_SINGLE",
    "BOND_LENGTHS_TRIPLE",
    "MARGINS",
    "Metrics",
    "MoleculeCheck",
    "bond_order",
    "bond_order_matrix",
    "build_molecule",
    "check_molecule",
    "evaluate_molecules",
    "input_problem",
    "largest_fragment",
    "mol_to_smiles",
    "pairwise_distances",
    "sanitize",
    "training_smiles",
    "valence_stable",
]
_FROM_BONDS = frozenset({
    "ALLOWED_VALENCE", "BOND_LENGTHS_DOUBLE", "BOND_LENGTHS_SINGLE", "BOND_LENGTHS_TRIPLE", "MARGINS", "bond_order",
    "bond_order_matrix", "pairwise_distances", "valence_stable",
})  # the rest come from molgen.chem.metrics, which needs RDKit


def __getattr__(name: str) -> Any:
    """Import `name` from its module when it is first asked for (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module 'molgen.chem' has no attribute {name!r}")
    module = "molgen.chem.bonds" if name in _FROM_BONDS else "molgen.chem.metrics"
    return getattr(importlib.import_module(module), name)
