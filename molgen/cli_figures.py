"""The figures `molgen evaluate` adds to EDM's four (connectivity, distribution distances, MMFF strain and, with
--posebusters, PoseBusters), their options, and the per-molecule outputs (molecules.csv, an SDF with SD properties)."""

from __future__ import annotations

import argparse
from pathlib import Path

from molgen.errors import MolgenError
from molgen.outputs import check_output_file, writing


def _workers(text: str) -> int:
    """An argparse type: a worker count >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def add_figure_arguments(parser: argparse.ArgumentParser) -> None:
    """`molgen evaluate`'s options of the added figures and per-molecule outputs."""
    group = parser.add_argument_group("bonds, PoseBusters and per-molecule outputs")
    group.add_argument("--bonds", choices=("edm", "file"), default="edm",
                       help="edm: EDM's distance-based bonds (comparable across models); file: the SDF files' own "
                            "bond blocks (SDF files only)")
    group.add_argument("--posebusters", action="store_true",
                       help="also run PoseBusters' mol checks (about 1 s per molecule and worker)")
    group.add_argument("--workers", type=_workers, default=None,
                       help="PoseBusters worker processes (default: the cores this process may use)")
    group.add_argument("--csv", type=Path, default=None, metavar="PATH",
                       help="write the per-molecule table (molecules.csv: flags, strain, failed PoseBusters checks)")
    group.add_argument("--sdf", type=Path, default=None, metavar="PATH",
                       help="write the molecules with their bonds and per-molecule flags as SD properties")


def check_figure_arguments(args: argparse.Namespace) -> None:
    """One-line errors before any long work: --bonds file on XYZ files or without files, unwritable outputs, a
    broken PoseBusters install."""
    if args.bonds == "file":
        if not args.files:
            raise MolgenError("--bonds file reads the bonds of SDF files; --qm9-split and --checkpoint have none")
        for path in args.files:
            if Path(path).suffix.lower() != ".sdf":
                raise MolgenError(f"--bonds file needs SDF files; {path} has no bonds")
    for path in (args.csv, args.sdf):
        if path is not None:
            check_output_file(path)
    if args.posebusters:
        from molgen.chem.busters import posebusters_config

        posebusters_config()


def read_files(args: argparse.Namespace) -> tuple[list, list | None]:
    """The molecules of the files and, with --bonds file, their bond orders."""
    from molgen.chem.io import read_molecules, read_sdf_with_bonds

    if args.bonds != "file":
        return [m for path in args.files for m in read_molecules(path)], None
    molecules, orders = [], []
    for path in args.files:
        read, bonds = read_sdf_with_bonds(path)
        molecules += read
        orders += bonds
    return molecules, orders


def evaluate_figures(molecules: list, orders: list | None, args: argparse.Namespace):
    """Score the molecules; returns (Scored, figures for the JSON, per-molecule rows), having written --csv and
    --sdf."""
    from molgen.chem.figures import score, slow_figures

    progress = not getattr(args, "no_progress", False)
    scored = score(molecules, orders, progress=progress)
    figures, rows = slow_figures(scored, strain=True, posebusters=args.posebusters, workers=args.workers,
                                 progress=progress)
    write_per_molecule(scored, rows, args.csv, args.sdf)
    return scored, figures, rows


def write_per_molecule(scored, rows: list[dict], csv_path: Path | None, sdf_path: Path | None) -> None:
    """Write the per-molecule table as CSV and the molecules with their rows as SD properties, where asked."""
    from molgen.chem.table import sd_properties, write_rows_csv

    if csv_path is not None:
        with writing(csv_path):
            write_rows_csv(csv_path, rows)
        print(f"per-molecule table written to {csv_path}")
    if sdf_path is not None:
        from molgen.chem.io import write_sdf

        names = [f"molecule {row['index']}: {row['smiles'] or 'invalid'}" for row in rows]
        with writing(sdf_path):
            write_sdf(sdf_path, scored.molecules, names, [sd_properties(row) for row in rows], scored.orders)
        print(f"molecules with their flags written to {sdf_path}")


def write_sample_tables(folder: Path, samples, names: list[str]) -> dict:
    """`molgen sample`'s fast figures (connectivity and distances) and per-molecule outputs: molecules.sdf with SD
    properties and molecules.csv in `folder`; returns the figures for summary.json."""
    from molgen.chem.figures import Scored, fast_figures, score
    from molgen.chem.io import write_sdf
    from molgen.chem.table import molecule_rows, sd_properties, write_rows_csv

    scored: Scored = score(samples.molecules, checks=samples.checks)
    rows = molecule_rows(scored.checks, scored.fragments)
    write_sdf(folder / "molecules.sdf", samples.molecules, names, [sd_properties(row) for row in rows], scored.orders)
    write_rows_csv(folder / "molecules.csv", rows)
    return fast_figures(scored)
