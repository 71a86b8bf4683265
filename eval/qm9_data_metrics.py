"""Score the QM9 molecules themselves with molgen's EDM metrics and print the papers' table.

Usage: python eval/qm9_data_metrics.py [--cache-dir DIR]
Reference (EDM's own metric code on the qm9pack molecules): all 130,831: 99.36 / 95.28 / 97.68 / 97.62;
the 13,083 test-split molecules: 99.34 / 95.22 / 97.74 / 97.74 (atom / mol / valid / VxU, %).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from molgen.chem.metrics import evaluate_molecules
from molgen.chem.reference import training_smiles
from molgen.data.qm9 import SPLITS, load_splits

EDM_REFERENCE = {"test": (99.34, 95.22, 97.74, 97.74), "all": (99.36, 95.28, 97.68, 97.62)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    splits = load_splits(args.cache_dir)
    train_smiles = training_smiles(splits["train"], args.cache_dir)
    rows = {"test": splits["test"].molecules(), "all": [m for s in SPLITS for m in splits[s].molecules()]}
    print("| molecules | n | atom % | mol % | valid % | V×U % | novelty % | EDM's code: atom / mol / valid / V×U |")
    print("|---|---|---|---|---|---|---|---|")
    for name, molecules in rows.items():
        m = evaluate_molecules(molecules, training_smiles=train_smiles, progress=True)
        values = (m.atom_stable, m.mol_stable, m.validity, m.valid_and_unique, m.novelty)
        cells = " | ".join(f"{100 * v:.2f}" for v in values)
        reference = " / ".join(f"{v:.2f}" for v in EDM_REFERENCE[name])
        print(f"| {name} | {m.n_molecules:,} | {cells} | {reference} |", flush=True)


if __name__ == "__main__":
    main()
