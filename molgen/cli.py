"""The `molgen` command: `molgen data ...`, `molgen evaluate ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from molgen import __version__
from molgen.errors import MolgenError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molgen",
        description="3D molecule generation with E(3) equivariant diffusion (EDM) on QM9.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"molgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = commands.add_parser("data", help="prepare and describe the QM9 data (EDM's split)",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prepare = data_commands.add_parser("prepare", help="parse the qm9pack CSVs into the cache and print statistics",
                                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    prepare.add_argument("--rebuild", action="store_true", help="rebuild the cache even if it is intact")
    prepare.add_argument("--cache-dir", type=Path, default=None,
                         help="cache folder (default: $MOLGEN_CACHE_DIR or ~/.cache/molgen)")

    evaluate = commands.add_parser(
        "evaluate", help="score molecules (XYZ/SDF files or a QM9 split) with EDM's metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Atom and molecule stability, RDKit validity, uniqueness and novelty exactly as EDM defines them.",
    )
    evaluate.add_argument("files", nargs="*", type=Path, help="XYZ or SDF files of molecules")
    evaluate.add_argument("--qm9-split", choices=("train", "valid", "test"), default=None,
                          help="score the molecules of a QM9 split instead of files")
    evaluate.add_argument("--novelty", choices=("auto", "yes", "no"), default="auto",
                          help="score novelty against EDM's training SMILES (auto: when the QM9 data is installed)")
    evaluate.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the metrics as JSON")
    evaluate.add_argument("--cache-dir", type=Path, default=None, help="QM9 cache folder")
    return parser


def _prepare(args: argparse.Namespace) -> None:
    from molgen.data.qm9 import cache_path, load_splits
    from molgen.data.stats import atom_type_counts, node_count_histogram
    from molgen.elements import ELEMENTS

    if args.rebuild:
        from molgen.data.qm9 import load_qm9_arrays

        load_qm9_arrays(args.cache_dir, rebuild=True)
    splits = load_splits(args.cache_dir)
    print(f"QM9 cache: {cache_path(args.cache_dir)}")
    print("split sizes: " + ", ".join(f"{name} {len(ds):,}" for name, ds in splits.items()))
    histogram = node_count_histogram(splits["train"])
    print("train atom counts: " + ", ".join(f"{n}:{int(c)}" for n, c in enumerate(histogram) if c))
    counts = atom_type_counts(splits["train"])
    total = int(counts.sum())
    print("train atom types: " + ", ".join(f"{e} {int(c):,} ({100 * int(c) / total:.2f}%)"
                                          for e, c in zip(ELEMENTS, counts)))


def _training_smiles(args: argparse.Namespace) -> set[str] | None:
    """EDM's training SMILES, or None when novelty is not wanted or the data is not installed."""
    if args.novelty == "no":
        return None
    from molgen.data.qm9 import QM9Dataset
    from molgen.data.stats import training_smiles

    try:
        return training_smiles(QM9Dataset("train", args.cache_dir), args.cache_dir)
    except MolgenError as err:
        if args.novelty == "yes":
            raise
        print(f"novelty not scored: {err}", file=sys.stderr)
        return None


def _evaluate(args: argparse.Namespace) -> None:
    from molgen.chem.io import read_molecules
    from molgen.chem.metrics import evaluate_molecules

    if bool(args.files) == bool(args.qm9_split):
        raise MolgenError("give molecule files or --qm9-split, not both and not neither")
    if args.qm9_split:
        from molgen.data.qm9 import QM9Dataset

        molecules = QM9Dataset(args.qm9_split, args.cache_dir).molecules()
        source = f"QM9 {args.qm9_split} split"
    else:
        molecules = [m for path in args.files for m in read_molecules(path)]
        source = ", ".join(str(p) for p in args.files)
    metrics = evaluate_molecules(molecules, training_smiles=_training_smiles(args), progress=True)
    print(f"{len(molecules):,} molecules from {source}")
    print(metrics.format_table())
    if args.json is not None:
        from molgen.atomic import atomic_write

        with atomic_write(args.json) as handle:
            json.dump({"source": source, **metrics.to_dict()}, handle, indent=2)
        print(f"metrics written to {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `molgen` command; user errors print one line and exit with status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    handlers = {"data": _prepare, "evaluate": _evaluate}
    try:
        handlers[args.command](args)
    except MolgenError as err:
        print(f"molgen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("molgen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
