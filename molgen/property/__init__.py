"""Quantum properties of QM9 molecules: EDM's units and data halves, invariant property regressors (noise-conditional
guides and clean evaluators), their training task and their shipped files."""
