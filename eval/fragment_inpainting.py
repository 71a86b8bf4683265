"""Sampling around fixed fragments with the shipped checkpoint: validity, stability, the fragment kept, time.

For every fragment of eval/fragments/ (cut by eval/make_fragments.py) and every number R of RePaint round trips,
N molecules are sampled around it (`sample_molecules(fixed=..., resample=R)`, 100 ancestral steps, atom counts from
the training histogram above the fragment's size). Per cell: the share of valid and of stable molecules, the
share whose fragment atoms are all stable, the share that is valid and still holds the fragment on the fixed
atoms (its SMARTS matched on exactly those atoms, so bonds and aromaticity kept), and seconds per molecule.
Baseline: N unconditional samples, and the share of them that happen to contain each fragment (valid molecules
matching the SMARTS anywhere).

    .venv/bin/python eval/fragment_inpainting.py --samples 100 --resample 0 1 3 --out eval/fragment_inpainting.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rdkit import Chem

from molgen.chem.draw import molecule_to_rdkit
from molgen.sampling import sample_molecules

FRAGMENTS = Path(__file__).resolve().parent / "fragments"
KEPT = {  # the fragment's chemistry, matched on the fixed atoms of a valid molecule
    "benzene_ring": "c1ccccc1",
    "carboxyl": "[#6](=[#8])[#8]",
    "carbonyl": "[#6]=[#8]",
    "furan_ring": "c1ccoc1",
}


def kept(molecule, check, smarts: str, k: int) -> bool:
    """Valid, and the SMARTS matches exactly the first k atoms (the fixed ones)."""
    if not check.valid:
        return False
    pattern = Chem.MolFromSmarts(smarts)
    matches = molecule_to_rdkit(*molecule).GetSubstructMatches(pattern, uniquify=True)
    return any(set(match) == set(range(k)) for match in matches)


def contains(molecule, check, smarts: str) -> bool:
    """Valid and holding the SMARTS anywhere."""
    return check.valid and molecule_to_rdkit(*molecule).HasSubstructMatch(Chem.MolFromSmarts(smarts))


def cell(samples, smarts: str | None) -> dict:
    """The row of one sampling run."""
    checks, k = samples.checks, samples.fragment.num_atoms if samples.fragment is not None else 0
    pairs = list(zip(samples.molecules, checks))
    row = {"n": len(checks), "valid": np.mean([c.valid for c in checks]), "stable": np.mean([c.stable for c in checks]),
           "s_per_molecule": samples.seconds_per_molecule, "compute": samples.compute}
    if k:
        row["fragment_atoms_stable"] = np.mean([bool(c.stable_atoms[:k].all()) for c in checks])
        row["fragment_kept"] = np.mean([kept(m, c, smarts, k) for m, c in pairs])
    else:
        row["contains"] = {name: float(np.mean([contains(m, c, s) for m, c in pairs])) for name, s in KEPT.items()}
    return {key: float(value) if isinstance(value, np.floating) else value for key, value in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--resample", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--fragments", nargs="+", default=list(KEPT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {"baseline": cell(sample_molecules(num_molecules=args.samples, seed=args.seed), None)}
    print("unconditional:", results["baseline"], flush=True)
    for name in args.fragments:
        for resample in args.resample:
            samples = sample_molecules(num_molecules=args.samples, seed=args.seed, fixed=FRAGMENTS / f"{name}.xyz",
                                       resample=resample)
            results[f"{name} R={resample}"] = cell(samples, KEPT[name])
            print(name, resample, results[f"{name} R={resample}"], flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
