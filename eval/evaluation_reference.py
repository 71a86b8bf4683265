"""Reference rows of molgen evaluate's added figures: the QM9 test split itself and a sample file.

Usage: python eval/evaluation_reference.py [--samples FILE] [--posebusters N] [--workers W] [--json OUT]
- the QM9 test split: all 13,083 molecules for connectivity, distances and MMFF strain (timed), its first N
  (default 1,000) for PoseBusters (timed, seconds per molecule with W worker processes);
- --samples: the same figures for an .xyz/.sdf file (all groups on all its molecules), e.g. the shipped model's
  1,000 default samples (molgen sample -n 1000 --seed 0; molecules.xyz keeps 8 decimals).
Bonds are EDM's throughout. Prints a markdown table; --json also writes every figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from molgen.chem.figures import score, slow_figures
from molgen.chem.io import read_molecules
from molgen.data.qm9 import QM9Dataset


def timed_figures(molecules: list, posebusters: bool, workers: int) -> tuple[dict, float]:
    """The figures of `molecules` (strain always, PoseBusters if asked) and the seconds they took."""
    start = time.perf_counter()
    figures, _ = slow_figures(score(molecules, progress=True), strain=True, posebusters=posebusters,
                              workers=workers, progress=True)
    return figures, time.perf_counter() - start


def table_row(name: str, count: int, figures: dict) -> str:
    """One markdown row: connectivity, the headline distances, strain and PoseBusters' two pass rates."""
    d, s = figures["distances"], figures["strain"]
    cells = [name, f"{count:,}", f"{100 * figures['connected']:.2f}", f"{figures['fragments']:.3f}",
             f"{d['atom_types_tv']:.4f}", f"{d['bond_types_tv']:.4f}", f"{d['atom_count_tv']:.4f}",
             f"{d['valency_w1']:.4f}", f"{d['bond_lengths_w1']:.5f}", f"{d['angles_w1']:.3f}",
             f"{s['median_kcal_mol']:.2f} / {s['mean_kcal_mol']:.2f}", f"{s['median_rmsd']:.3f}",
             f"{s['typed']:,}"]
    p = figures.get("posebusters")
    cells += [f"{100 * p['pass']:.1f}", f"{100 * p['pass_without_energy']:.1f}"] if p else ["", ""]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, default=None)
    parser.add_argument("--posebusters", type=int, default=1000, help="QM9 test molecules for PoseBusters (0: none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    test = QM9Dataset("test", args.cache_dir).molecules()
    results = {}
    results["qm9_test"] = dict(zip(("figures", "seconds"), timed_figures(test, False, args.workers)), count=len(test))
    if args.posebusters:
        part = test[: args.posebusters]
        figures, seconds = timed_figures(part, True, args.workers)
        results["qm9_test_posebusters"] = {"figures": figures, "seconds": seconds, "count": len(part)}
    if args.samples is not None:
        samples = read_molecules(args.samples)
        figures, seconds = timed_figures(samples, True, args.workers)
        results["samples"] = {"figures": figures, "seconds": seconds, "count": len(samples), "file": str(args.samples)}
    print("| molecules | n | connected % | pieces | atom types TV | bond types TV | atom count TV | valency W1 | "
          "bond lengths W1 (Å) | angles W1 (°) | strain median / mean (kcal/mol) | pose RMSD median (Å) | MMFF typed | "
          "PoseBusters pass % | without energy % |")
    print("|" + "---|" * 15)
    for name, result in results.items():
        print(table_row(name, result["count"], result["figures"]))
    for name, result in results.items():
        print(f"{name}: {result['seconds']:.1f} s for {result['count']:,} molecules "
              f"({result['seconds'] / result['count']:.3f} s per molecule, {args.workers} PoseBusters workers)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
