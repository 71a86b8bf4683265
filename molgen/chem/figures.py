"""The figures of `molgen evaluate` and `molgen sample` beyond EDM's four: connectivity, MiDi's distribution
distances to the QM9 test split, MMFF94 strain and PoseBusters, with the per-molecule table.

Bonds are EDM's distance-based ones unless the caller gives each molecule's bond orders (an SDF's own bonds).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from molgen.chem.bonds import bond_order_matrix, fragment_count
from molgen.chem.distributions import distances, histograms, reference_histograms
from molgen.chem.metrics import Metrics, MoleculeCheck, check_molecule, input_problem
from molgen.chem.table import Row, molecule_rows


@dataclass
class Scored:
    """Molecules (positions [N, 3], atom types [N]) with their bond orders [N, N], EDM checks and piece counts
    (0 for a molecule that could not be scored)."""

    molecules: Sequence
    orders: list[np.ndarray]
    checks: list[MoleculeCheck]
    fragments: list[int]

    def metrics(self, training_smiles: set[str] | None = None) -> Metrics:
        """EDM's metrics of these molecules."""
        return Metrics.from_checks(self.checks, training_smiles)

    def scorable_indices(self) -> list[int]:
        """Indices of the molecules that could be scored."""
        return [i for i, check in enumerate(self.checks) if not check.bad_input]

    def scorable(self) -> tuple[list, list[np.ndarray]]:
        """The molecules that could be scored and their bond orders."""
        keep = self.scorable_indices()
        return [self.molecules[i] for i in keep], [self.orders[i] for i in keep]


def _bonds(positions: np.ndarray, atom_types: np.ndarray) -> np.ndarray:
    """EDM's bond orders, or no bonds for a molecule that cannot be scored. Shapes: [N, 3], [N] -> [N, N]."""
    if input_problem(positions, atom_types) is not None:
        n = len(np.atleast_1d(atom_types))
        return np.zeros((n, n), dtype=np.int64)
    return bond_order_matrix(positions, np.asarray(atom_types, dtype=np.intp))


def score(molecules: Sequence, orders: Sequence[np.ndarray] | None = None, progress: bool = False,
          checks: Sequence[MoleculeCheck] | None = None) -> Scored:
    """EDM's checks (unless given, as made with EDM's bonds) and the piece count of each molecule, with `orders` or
    EDM's bonds."""
    molecules = list(molecules)
    if orders is None:
        orders = [_bonds(positions, types) for positions, types in molecules]
    pairs = tqdm(zip(molecules, orders), total=len(molecules), desc="scoring molecules", disable=not progress)
    checks = [check_molecule(x, t, order) for (x, t), order in pairs] if checks is None else list(checks)
    fragments = [0 if check.bad_input else fragment_count(order) for check, order in zip(checks, orders)]
    return Scored(molecules, list(orders), checks, fragments)


def fast_figures(scored: Scored) -> dict:
    """Connectivity (`connected`: fraction in one piece, `fragments`: mean pieces of the scorable molecules) and
    MiDi's `distances` to the QM9 test split."""
    pieces = [count for count in scored.fragments if count > 0]
    connected = sum(count == 1 for count in scored.fragments) / len(scored.fragments) if scored.fragments else 0.0
    return {"connected": connected, "fragments": statistics.fmean(pieces) if pieces else None,
            "distances": distances(histograms(*scored.scorable()), reference_histograms())}


def slow_figures(scored: Scored, strain: bool, posebusters: bool, workers: int | None = None,
                 progress: bool = False) -> tuple[dict, list[Row]]:
    """The fast figures, MMFF `strain` and `posebusters` when asked, and the per-molecule rows."""
    figures = fast_figures(scored)
    strains = failed = None
    if strain:
        from molgen.chem.strain import strain_summary, strains as mmff_strains

        strains = [None] * len(scored.checks)
        for index, result in zip(scored.scorable_indices(), mmff_strains(*scored.scorable(), progress=progress)):
            strains[index] = result
        figures["strain"] = strain_summary([strains[i] for i in scored.scorable_indices()])
    if posebusters:
        from molgen.chem.busters import failed_checks, posebusters_summary

        names, failed_scorable = failed_checks(*scored.scorable(), workers=workers, progress=progress)
        failed = [list(names)] * len(scored.checks)
        for index, checks in zip(scored.scorable_indices(), failed_scorable):
            failed[index] = checks
        figures["posebusters"] = posebusters_summary(names, failed)
    return figures, molecule_rows(scored.checks, scored.fragments, strains, failed)


def format_figures(figures: dict) -> str:
    """The figures as a few readable lines."""
    d = figures["distances"]
    fragments = "-" if figures["fragments"] is None else f"{figures['fragments']:.3f}"
    lines = [f"connected {100 * figures['connected']:.2f}%, {fragments} pieces per molecule",
             f"to the QM9 test split: atom types TV {d['atom_types_tv']:.4f}, bond types TV {d['bond_types_tv']:.4f}, "
             f"atom count TV {d['atom_count_tv']:.4f} (W1 {d['atom_count_w1']:.4f}), valency W1 {d['valency_w1']:.4f}, "
             f"bond lengths W1 {d['bond_lengths_w1']:.5f} Å, angles W1 {d['angles_w1']:.3f}°"]
    if "strain" in figures:
        s = figures["strain"]
        if s["typed"]:
            lines.append(f"MMFF94 strain (maxIters {s['max_iters']}): mean {s['mean_kcal_mol']:.2f}, median "
                         f"{s['median_kcal_mol']:.2f} kcal/mol; heavy-atom RMSD to the relaxed pose: mean "
                         f"{s['mean_rmsd']:.3f}, median {s['median_rmsd']:.3f} Å; {s['typed']} typed, "
                         f"{s['untyped']} not, {s['not_converged']} not converged")
        else:
            lines.append(f"MMFF94 strain: none of the {s['untyped']} molecules could be typed")
    if "posebusters" in figures:
        p = figures["posebusters"]
        checks = ", ".join(f"{name} {100 * value:.1f}" for name, value in p.items()
                           if name not in ("pass", "pass_without_energy", "molecules", "version", "not_computed"))
        lines.append(f"PoseBusters {p['version']} (mol): {100 * p['pass']:.2f}% pass every check, "
                     f"{100 * p['pass_without_energy']:.2f}% all but the energy ratio; per check (%): {checks}")
    return "\n".join(lines)
