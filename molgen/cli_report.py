"""report.html from the commands: `molgen sample` writes OUT/report.html unless --no-report, and `molgen evaluate
... --report OUT.html` writes one for the molecules it scored."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def add_no_report_option(parser: argparse.ArgumentParser) -> None:
    """`molgen sample --no-report`."""
    parser.add_argument("--no-report", action="store_true",
                        help="do not write OUT/report.html (the molecules in 3D, their depictions, SMILES and flags; "
                             "one offline file for a browser)")


def add_report_option(parser: argparse.ArgumentParser) -> None:
    """`molgen evaluate --report OUT.html`."""
    parser.add_argument("--report", type=Path, default=None, metavar="OUT.html",
                        help="also write the molecules as one offline HTML page: 3D views, 2D depictions, SMILES, "
                             "flags, filters and the metrics")


def report_rows(molecules: Sequence, checks: Sequence) -> list[dict[str, Any]]:
    """The per-molecule rows of EDM's checks and the molecules' pieces (bonds by EDM's rule)."""
    from molgen.chem.bonds import bond_order_matrix, fragment_count
    from molgen.chem.table import molecule_rows

    return molecule_rows(checks, [fragment_count(bond_order_matrix(x, types)) for x, types in molecules])


def sample_summary(samples, fragment_path: Path | None = None) -> list[tuple[str, Any]]:
    """The summary lines of a sampling run: checkpoint, sampler, steps, seed, compute, time."""
    s = samples.settings
    lines = [("checkpoint", f"{samples.checkpoint} (step {samples.checkpoint_step:,}, "
                            f"{'EMA' if s.use_ema else 'raw'} weights)"),
             ("sampler", s.sampler + (f", churn {s.churn}" if s.churn else "")),
             ("steps", s.resolved_steps), ("seed", s.seed), ("compute", samples.compute),
             ("molecules", f"{len(samples.molecules):,} in {samples.seconds:.1f} s of sampling")]
    if fragment_path is not None:
        lines.append(("fixed fragment", f"{fragment_path} ({len(samples.fragment[1])} atoms, resample {s.resample})"))
    return lines


def write_sample_report(path: Path, samples, metrics: Mapping[str, Any], rows: Sequence | None = None,
                        fragment_path: Path | None = None) -> None:
    """report.html of `molgen sample`: every molecule, the chain when sampled, the fixed atoms when given."""
    from molgen.report import write_report
    from molgen.sampling import chain_labels

    chain = [(frame.positions, frame.atom_types, label)
             for frame, label in zip(samples.chain, chain_labels(samples.chain))] if samples.chain else ()
    fixed_atoms = len(samples.fragment[1]) if samples.fragment is not None else 0
    write_report(path, samples.molecules, rows if rows is not None else report_rows(samples.molecules, samples.checks),
                 sample_summary(samples, fragment_path), metrics, chain, fixed_atoms,
                 title=f"molgen sample: {len(samples.molecules):,} molecules")


def write_evaluation_report(path: Path, molecules: Sequence, source: str, metrics: Mapping[str, Any],
                            rows: Sequence | None = None, orders: Sequence | None = None,
                            bonds: str = "EDM's distance rule") -> None:
    """report.html of `molgen evaluate --report`: the molecules scored, from `source`, drawn with the bond orders
    `orders` [N, N] that scored them (default: EDM's rule)."""
    from molgen.chem.metrics import check_molecule
    from molgen.report import write_report

    if rows is None:
        rows = report_rows(molecules, [check_molecule(x, types) for x, types in molecules])
    write_report(path, molecules, rows, [("source", source), ("molecules", f"{len(molecules):,}"), ("bonds", bonds)],
                 metrics, title=f"molgen evaluate: {source}", orders=orders, bonds=bonds)
