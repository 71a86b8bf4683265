"""Chemistry on generated molecules: EDM's bond rules and sample metrics (stability, validity, novelty)."""

from molgen.chem.bonds import (
    ALLOWED_VALENCE,
    BOND_LENGTHS_DOUBLE,
    BOND_LENGTHS_SINGLE,
    BOND_LENGTHS_TRIPLE,
    MARGINS,
    bond_order,
    bond_order_matrix,
    pairwise_distances,
    valence_stable,
)
from molgen.chem.metrics import (
    Metrics,
    MoleculeCheck,
    build_molecule,
    check_molecule,
    evaluate_molecules,
    input_problem,
    largest_fragment,
    mol_to_smiles,
    sanitize,
    training_smiles,
)

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
