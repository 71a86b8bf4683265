"""The README's design example: molecules grown around a fragment toward a property target, against the same seeds
unguided, each scored by the property's evaluator (trained on clean D_a molecules); a picture of the valid guided
ones (of all guided ones when none is valid).

    .venv/bin/python eval/property_design_example.py --fragment eval/fragments/carbonyl.xyz --target alpha=85 \
        --guidance 2 -n 24 --picture eval/property_design_example.png --json eval/property_design_example.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from property_guidance import evaluate, sha256

from molgen.chem.draw import draw_grid
from molgen.chem.io import read_fragment
from molgen.property.checkpoint import load_regressor
from molgen.property.targets import parse_target, regressor_folder
from molgen.sampling import sample_molecules


def scored(samples, evaluator) -> dict:
    """The evaluator's values of the molecules, and their validity and stability."""
    values = evaluate(evaluator, samples.molecules)
    valid = np.array([check.valid for check in samples.checks])
    return {"values": values.tolist(), "valid": valid.tolist(),
            "stable": [check.stable for check in samples.checks],
            "smiles": [check.smiles if check.valid else None for check in samples.checks],
            "mean_valid": float(values[valid].mean()) if valid.any() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragment", type=Path, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("-n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regressors", type=Path, default=None)
    parser.add_argument("--picture", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    name, value = parse_target(args.target)
    evaluator_path = regressor_folder(args.regressors) / f"{name}_evaluator.pt"
    evaluator = load_regressor(evaluator_path).module.float().eval()
    common = {"num_molecules": args.n, "fixed": args.fragment, "seed": args.seed, "regressors": args.regressors}
    guided = sample_molecules(targets={name: value}, guidance=args.guidance, **common)
    counts = sorted(len(types) for _, types in guided.molecules)
    unguided = sample_molecules(targets={name: value}, guidance=0.0, **common)  # the same counts: p(N | c)
    assert sorted(len(types) for _, types in unguided.molecules) == counts
    shown = [i for i, check in enumerate(guided.checks) if check.valid] or list(range(args.n))  # the valid ones
    draw_grid(args.picture, [guided.molecules[i] for i in shown], [guided.checks[i] for i in shown], 4,
              len(read_fragment(args.fragment)[1]))
    result = {"fragment": str(args.fragment), "target": {name: value}, "guidance": args.guidance, "seed": args.seed,
              "checkpoint_sha256": sha256(guided.checkpoint)[:12], "evaluator_sha256": sha256(evaluator_path)[:12],
              "compute": guided.compute, "seconds": guided.seconds,
              "guided": scored(guided, evaluator), "unguided": scored(unguided, evaluator)}
    args.json.write_text(json.dumps(result, indent=1))
    for row in ("unguided", "guided"):
        print(f"{row}: evaluator mean over valid molecules {result[row]['mean_valid']}, valid "
              f"{sum(result[row]['valid'])} of {args.n}")


if __name__ == "__main__":
    main()
