"""Reference rows of molgen evaluate's added figures: the QM9 test split itself and a sample file.

Usage: python eval/evaluation_reference.py --json OUT [--samples FILE [--no-test-split]] [--posebusters N] [--workers W]
       [--block B]
       python eval/evaluation_reference.py --json OUT --table        # print the markdown table of OUT
- the QM9 test split: all 13,083 molecules for connectivity, distances and MMFF strain (timed), its first N
  (default 1,000) for PoseBusters;
- --samples: the same for an .xyz/.sdf file, e.g. the shipped model's 1,000 default samples (molgen sample -n 1000
  --seed 0; molecules.xyz keeps 8 decimals), PoseBusters on its first N.
PoseBusters runs in blocks of B molecules with W worker processes; OUT is rewritten after every stage and block
(with the wall and worker CPU seconds so far), so a long run can be read while it goes and resumed where it stopped.
Bonds are EDM's throughout.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from molgen.chem.busters import failed_checks, posebusters_summary
from molgen.chem.figures import score, slow_figures
from molgen.chem.io import read_molecules
from molgen.data.qm9 import QM9Dataset


def children_cpu_seconds() -> float:
    """CPU seconds used so far by finished child processes (the PoseBusters workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fast_stage(molecules: list) -> dict:
    """Connectivity, distances and strain of all molecules, timed."""
    start = time.perf_counter()
    figures, _ = slow_figures(score(molecules, progress=True), strain=True, posebusters=False, progress=True)
    return {"count": len(molecules), "figures": figures, "seconds": time.perf_counter() - start}


def posebusters_stage(molecules: list, done: dict, count: int, block: int, workers: int, save) -> None:
    """PoseBusters on the first `count` molecules, `block` at a time, accumulating into `done` and saving."""
    done.setdefault("failed", [])
    done.setdefault("seconds", 0.0)
    done.setdefault("worker_cpu_seconds", 0.0)
    while len(done["failed"]) < min(count, len(molecules)):
        part = molecules[len(done["failed"]): min(count, len(done["failed"]) + block)]
        start, cpu = time.perf_counter(), children_cpu_seconds()
        scored = score(part)
        names, failed = failed_checks(*scored.scorable(), workers=workers, progress=True)
        done["failed"] += failed
        done["seconds"] += time.perf_counter() - start
        done["worker_cpu_seconds"] += children_cpu_seconds() - cpu
        done["summary"] = posebusters_summary(names, done["failed"])
        save()


def table(results: dict) -> str:
    """The markdown rows of the finished stages."""
    lines = ["| molecules | n | connected % | pieces | atom types TV | bond types TV | atom count TV | valency W1 | "
             "bond lengths W1 (Å) | angles W1 (°) | strain median / mean (kcal/mol) | pose RMSD median (Å) | "
             "MMFF typed | PoseBusters n | pass % | without energy % |", "|" + "---|" * 16]
    for name in results:
        fast, pb = results[name]["fast"], results[name].get("posebusters", {})
        f, d, s = fast["figures"], fast["figures"]["distances"], fast["figures"]["strain"]
        p = pb.get("summary")
        cells = [name, f"{fast['count']:,}", f"{100 * f['connected']:.2f}", f"{f['fragments']:.3f}",
                 f"{d['atom_types_tv']:.4f}", f"{d['bond_types_tv']:.4f}", f"{d['atom_count_tv']:.4f}",
                 f"{d['valency_w1']:.4f}", f"{d['bond_lengths_w1']:.5f}", f"{d['angles_w1']:.3f}",
                 f"{s['median_kcal_mol']:.2f} / {s['mean_kcal_mol']:.2f}", f"{s['median_rmsd']:.3f}", f"{s['typed']:,}",
                 f"{len(pb['failed']):,}" if p else "", f"{100 * p['pass']:.1f}" if p else "",
                 f"{100 * p['pass_without_energy']:.1f}" if p else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--samples", type=Path, default=None)
    parser.add_argument("--posebusters", type=int, default=1000, help="molecules of each set for PoseBusters")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--table", action="store_true", help="only print the table of --json")
    parser.add_argument("--no-test-split", action="store_true", help="only the --samples file")
    parser.add_argument("--train", type=int, default=0,
                        help="also the first N training molecules, fast groups only: the floor of N-molecule distances")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    if not args.table:
        save = (lambda: args.json.write_text(json.dumps(results, indent=1) + "\n"))
        sets = {} if args.no_test_split else {"qm9_test": lambda: QM9Dataset("test", args.cache_dir).molecules()}
        if args.samples is not None:
            sets["samples"] = lambda: read_molecules(args.samples)
        if args.train:
            sets[f"qm9_train_{args.train}"] = lambda: QM9Dataset("train", args.cache_dir).molecules()[: args.train]
        for name, load in sets.items():
            molecules, result = load(), results.setdefault(name, {})
            if "fast" not in result:
                result["fast"] = fast_stage(molecules)
                save()
            if not name.startswith("qm9_train"):
                posebusters_stage(molecules, result.setdefault("posebusters", {}), args.posebusters, args.block,
                                  args.workers, save)
    print(table(results))
    for name, result in results.items():
        pb = result.get("posebusters", {})
        if pb.get("failed"):
            n = len(pb["failed"])
            print(f"{name}: fast groups {result['fast']['seconds']:.1f} s for {result['fast']['count']:,} molecules; "
                  f"PoseBusters {pb['seconds'] / n:.2f} s wall and {pb['worker_cpu_seconds'] / n:.2f} s worker CPU "
                  f"per molecule ({n:,} molecules, {args.workers} workers)")


if __name__ == "__main__":
    main()
