"""Compute the reference histograms of MiDi's distribution distances from the QM9 test split (EDM's bonds).

Usage: python eval/qm9_reference_statistics.py [--cache-dir DIR]
Writes molgen/chem/data/qm9_test_statistics.json, which molgen ships so that evaluation needs no QM9 data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from molgen.chem.bonds import bond_order_matrix
from molgen.chem.distributions import REFERENCE_FILE, histograms, write_reference
from molgen.data.qm9 import QM9Dataset

OUT = Path(__file__).resolve().parents[1] / "molgen" / "chem" / "data" / REFERENCE_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    molecules = QM9Dataset("test", args.cache_dir).molecules()
    orders = [bond_order_matrix(x, t) for x, t in tqdm(molecules, desc="EDM bonds")]
    reference = histograms(molecules, orders)
    source = f"QM9 test split ({len(molecules):,} molecules, qm9pack, molgen's split), EDM's distance-based bonds"
    write_reference(OUT, reference, source)
    print(f"{source}: {OUT} written in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
