"""EDM's QM9 sample metrics: atom and molecule stability, RDKit validity, uniqueness and novelty.

Reproduces EDM's qm9/analyze.py (check_stability) and qm9/rdkit_functions.py (build_molecule, mol2smiles,
compute_validity, compute_uniqueness, compute_novelty) rule for rule (Hoogeboom et al. 2022, section 4.1):
- stability: bond orders from distances (molgen.chem.bonds); an atom is stable iff its bond-order sum equals
  its allowed valence; atom stability pools atoms over all molecules; a molecule is stable iff all its
  atoms are.
- validity: an RDKit molecule of neutral atoms (implicit hydrogens allowed) with those bonds is valid iff
  `Chem.SanitizeMol` succeeds; its SMILES is that of the largest fragment, sanitised again.
- uniqueness = distinct SMILES / valid; valid_and_unique = distinct SMILES / molecules;
  novelty = distinct SMILES absent from the training SMILES / distinct SMILES.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from tqdm.auto import tqdm

from molgen.batch import Molecule
from molgen.chem.bonds import bond_order_matrix, valence_stable
from molgen.elements import ELEMENTS


_BOND_TYPES = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)
_ATOMS = tuple(Chem.Atom(symbol) for symbol in ELEMENTS)  # prototypes; AddAtom copies them


@dataclass(frozen=True, eq=False)
class MoleculeCheck:
    """Stability and validity of one molecule.

    `reason` says why the molecule is invalid (bad input or failed sanitisation); `bad_input` marks molecules
    that could not be scored at all (counted with every atom unstable and invalid).
    """

    stable_atoms: np.ndarray  # [N] bool
    valid: bool
    smiles: str | None
    reason: str | None = None
    bad_input: bool = False

    @property
    def stable(self) -> bool:
        """Molecule stability: a scorable molecule whose atoms are all stable."""
        return not self.bad_input and bool(self.stable_atoms.all())


def input_problem(positions: np.ndarray, atom_types: np.ndarray) -> str | None:
    """Why a molecule cannot be scored (shape, dtype, no atoms, unknown type, non-finite), or None."""
    types = np.asarray(atom_types)
    if types.ndim != 1:
        return f"atom types must have shape [N], got {list(types.shape)}"
    try:
        x = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError):
        return "positions are not numeric"
    if x.shape != (len(types), 3):
        return f"positions must have shape [N, 3] with N = {len(types)}, got {list(x.shape)}"
    if len(types) == 0:
        return "no atoms"
    if not np.issubdtype(types.dtype, np.integer):
        return f"atom types must be integers, got dtype {types.dtype}"
    if types.min() < 0 or types.max() >= len(ELEMENTS):
        return f"atom type index out of range [0, {len(ELEMENTS) - 1}]: {sorted(set(types.tolist()))}"
    if not np.isfinite(x).all():
        return "non-finite coordinates"
    return None


def build_molecule(atom_types: np.ndarray, order: np.ndarray) -> Chem.RWMol:
    """RDKit molecule of neutral atoms with a single/double/triple bond for every pair of order > 0.

    Bonds are added in EDM's order (i > j, row by row). Shapes: atom_types [N], order [N, N].
    """
    mol = Chem.RWMol()
    for t in atom_types.tolist():
        mol.AddAtom(_ATOMS[t])
    rows, cols = np.nonzero(np.tril(order, k=-1))  # [K], [K]
    for i, j, k in zip(rows.tolist(), cols.tolist(), order[rows, cols].tolist()):
        mol.AddBond(i, j, _BOND_TYPES[k])
    return mol


def sanitize(mol: Chem.Mol) -> str | None:
    """Sanitise `mol` in place with RDKit's logging silenced; the error message if it fails, else None."""
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(mol)
        except ValueError as error:  # RDKit's MolSanitizeException subclasses ValueError
            return str(error) or type(error).__name__
    return None


def mol_to_smiles(mol: Chem.Mol) -> str | None:
    """EDM's mol2smiles: sanitise in place and return the canonical SMILES, or None if sanitisation fails."""
    return None if sanitize(mol) is not None else Chem.MolToSmiles(mol)


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms (the first of equals), as EDM keeps for validity."""
    fragments = Chem.rdmolops.GetMolFrags(mol, asMols=True)
    return max(fragments, default=mol, key=lambda fragment: fragment.GetNumAtoms())


def check_molecule(positions: np.ndarray, atom_types: np.ndarray, order: np.ndarray | None = None) -> MoleculeCheck:
    """Stability per atom, validity and largest-fragment SMILES of one molecule; never raises on bad input.

    Shapes: positions [N, 3] (Å), atom_types [N] (int indices into ELEMENTS), order [N, N] (bond orders; default:
    EDM's from the distances).
    """
    problem = input_problem(positions, atom_types)
    if problem is not None:
        types = np.asarray(atom_types)
        n_atoms = len(types) if types.ndim >= 1 else 0
        return MoleculeCheck(np.zeros(n_atoms, dtype=bool), False, None, problem, bad_input=True)
    types = np.asarray(atom_types, dtype=np.intp)  # [N]
    order = bond_order_matrix(positions, types) if order is None else order  # [N, N]
    stable_atoms = valence_stable(order, types)  # [N]
    mol = build_molecule(types, order)
    error = sanitize(mol)
    if error is not None:
        return MoleculeCheck(stable_atoms, False, None, f"sanitization failed: {error}")
    # EDM counts the molecule valid even if the fragment's re-sanitisation failed (SMILES None then).
    return MoleculeCheck(stable_atoms, True, mol_to_smiles(largest_fragment(mol)))


def _fraction(numerator: int, denominator: int) -> float:
    """numerator / denominator, 0.0 when the denominator is zero."""
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class Metrics:
    """EDM's sample metrics: fractions in [0, 1] with their counts, and the SMILES of every molecule."""

    atom_stable: float
    mol_stable: float
    validity: float
    uniqueness: float
    valid_and_unique: float
    novelty: float | None
    n_molecules: int
    n_atoms: int
    n_stable_atoms: int
    n_stable_molecules: int
    n_valid: int
    n_unique: int
    n_novel: int | None
    smiles: tuple[str | None, ...]  # per molecule; None when invalid
    problems: tuple[tuple[int, str], ...]  # (molecule index, reason) for molecules that could not be scored

    @classmethod
    def from_checks(cls, checks: Sequence[MoleculeCheck], training_smiles: set[str] | None = None) -> Metrics:
        """Pool per-molecule checks into EDM's metrics; novelty only with a training SMILES set."""
        n_atoms = sum(len(check.stable_atoms) for check in checks)
        n_stable_atoms = sum(int(check.stable_atoms.sum()) for check in checks)
        n_stable_molecules = sum(check.stable for check in checks)
        valid_smiles = [check.smiles for check in checks if check.valid]
        unique = set(valid_smiles)
        n_novel = None if training_smiles is None else len(unique - training_smiles)
        return cls(
            atom_stable=_fraction(n_stable_atoms, n_atoms),
            mol_stable=_fraction(n_stable_molecules, len(checks)),
            validity=_fraction(len(valid_smiles), len(checks)),
            uniqueness=_fraction(len(unique), len(valid_smiles)),
            valid_and_unique=_fraction(len(unique), len(checks)),
            novelty=None if n_novel is None else _fraction(n_novel, len(unique)),
            n_molecules=len(checks),
            n_atoms=n_atoms,
            n_stable_atoms=n_stable_atoms,
            n_stable_molecules=n_stable_molecules,
            n_valid=len(valid_smiles),
            n_unique=len(unique),
            n_novel=n_novel,
            smiles=tuple(check.smiles for check in checks),
            problems=tuple((i, check.reason) for i, check in enumerate(checks) if check.bad_input),
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """The fractions and counts as a JSON-able dict (without the per-molecule SMILES and problems)."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("smiles", "problems")
        }

    def rows(self) -> list[tuple[str, str, float | None, int | None, int]]:
        """(field, label, fraction, numerator, denominator) of each metric; the numerator is None when unscored."""
        return [
            ("atom_stable", "atom stability", self.atom_stable, self.n_stable_atoms, self.n_atoms),
            ("mol_stable", "mol stability", self.mol_stable, self.n_stable_molecules, self.n_molecules),
            ("validity", "validity", self.validity, self.n_valid, self.n_molecules),
            ("uniqueness", "uniqueness", self.uniqueness, self.n_unique, self.n_valid),
            ("valid_and_unique", "valid & unique", self.valid_and_unique, self.n_unique, self.n_molecules),
            ("novelty", "novelty", self.novelty, self.n_novel, self.n_unique),
        ]

    def format_table(self, intervals: dict[str, tuple[float, float]] | None = None) -> str:
        """A small human-readable table: each metric in percent with its count (and interval, when given)."""
        header = f"{'metric':<16}{'%':>8}  " + (f"{'95% CI':<13}  " if intervals else "") + "count"
        lines = [header]
        for name, label, value, numerator, denominator in self.rows():
            percent = "-" if value is None else f"{100 * value:.2f}"
            count = "-" if numerator is None else f"{numerator} / {denominator}"
            line = f"{label:<16}{percent:>8}  "
            if intervals:
                low, high = intervals.get(name) or (None, None)
                line += f"{'-' if low is None else f'{100 * low:.2f}-{100 * high:.2f}':<13}  "
            lines.append(line + count)
        if self.problems:
            index, reason = self.problems[0]
            lines.append(f"{len(self.problems)} molecule(s) could not be scored, e.g. #{index}: {reason}")
        return "\n".join(lines)


def evaluate_molecules(
    molecules: Iterable[Molecule], training_smiles: set[str] | None = None, progress: bool = False
) -> Metrics:
    """EDM's stability, validity, uniqueness and (with `training_smiles`) novelty of generated molecules.

    Each molecule is (positions [N, 3] in Å, atom_types [N] int); bad molecules are reported, not raised.
    """
    checks = [
        check_molecule(positions, atom_types)
        for positions, atom_types in tqdm(molecules, desc="scoring molecules", disable=not progress)
    ]
    return Metrics.from_checks(checks, training_smiles)


def training_smiles(molecules: Iterable[Molecule], progress: bool = False) -> set[str]:
    """EDM's novelty reference: SMILES of each whole training molecule (no largest-fragment step).

    Molecules that cannot be scored or fail sanitisation are skipped, as EDM does.
    """
    smiles: set[str] = set()
    for positions, atom_types in tqdm(molecules, desc="training SMILES", disable=not progress):
        if input_problem(positions, atom_types) is not None:
            continue
        types = np.asarray(atom_types, dtype=np.intp)  # [N]
        whole = mol_to_smiles(build_molecule(types, bond_order_matrix(positions, types)))
        if whole is not None:
            smiles.add(whole)
    return smiles
