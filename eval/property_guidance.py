"""EDM's property protocol (Hoogeboom et al. 2022, Table 3) for EEGSDE's energy guidance on the shipped checkpoint.

For one property: draw (N, c) pairs from D_b (EDM's qm9_second_half: a molecule's atom count and property value),
sample one molecule per pair with N atoms (EDM's ancestral sampler), unguided (s = 0) and guided toward c at each
scale s, with the same seeds in every row (common random numbers: the rows differ by the guidance alone), and score
each molecule's property with the evaluator regressor (trained on clean D_a molecules). Rows:
  - Naive: the evaluator on the pairs' own D_b molecules against shuffled targets (EDM's upper bound);
  - #Atoms: the median of the property over D_b molecules with N atoms, as the prediction of c from N alone;
  - unguided and guided: MAE to c over all molecules and over valid ones, molecule stability and validity;
  - QM9: the evaluator on the pairs' own D_b molecules against their true values (the lower bound);
and the paired bootstrap 95% interval of guided - unguided MAE (over the same pairs).

    .venv/bin/python eval/property_guidance.py run --property alpha --molecules 1000 --scales 1 4 --json a.json
    .venv/bin/python eval/property_guidance.py table a.json gap.json --out eval/property_guidance.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from molgen.batch import MoleculeBatch, size_batches
from molgen.chem.metrics import check_molecule
from molgen.diffusion.errors import SamplingError
from molgen.diffusion.process import batch_to_state
from molgen.diffusion.samplers import sample
from molgen.precision import describe_compute, model_precision
from molgen.property.checkpoint import load_regressor
from molgen.property.guides import GuidedRequest, guidance
from molgen.property.halves import load_half
from molgen.property.properties import get_property, property_values
from molgen.property.targets import regressor_folder
from molgen.sampling import load_for_sampling
from molgen.settings import SampleSettings

BOOTSTRAP = 2000


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def draw_pairs(name: str, count: int, seed: int):
    """(D_b subset, chosen positions [P], N [P], c [P]) of `count` molecules of D_b drawn without replacement."""
    half = load_half("second")
    values = property_values(half.properties, name)  # [B]
    chosen = np.random.default_rng(seed).choice(len(values), size=count, replace=False)  # [P]
    return half, chosen, half.num_atoms.numpy()[chosen], values[chosen]


def evaluate(evaluator, molecules, batch_size: int = 200) -> np.ndarray:
    """The evaluator's property (in its unit) of each molecule (positions [N, 3] Å, types [N]), float64 [P]."""
    predictions = []
    for start in range(0, len(molecules), batch_size):
        chunk = molecules[start:start + batch_size]
        batch = MoleculeBatch.from_arrays(torch.from_numpy(np.concatenate([x for x, _ in chunk])).float(),
                                          torch.from_numpy(np.concatenate([t for _, t in chunk])).long(),
                                          torch.tensor([len(t) for _, t in chunk]))
        x, h = batch_to_state(batch)  # [M, 3], [M, 6]
        with torch.no_grad():
            output = evaluator(x, h, x.new_zeros(batch.num_molecules), batch.layout)[:, 0]  # [B]
        predictions.append(evaluator.denormalise(output).numpy())
    return np.concatenate(predictions)


def generate(loaded, guides, counts: np.ndarray, targets: np.ndarray, scale: float, steps: int, seed: int,
             batch_size: int, bound: float | None = None):
    """One molecule per (N, c) pair, batches of similar N each seeded by (seed, batch number), the guidance term
    bounded to RMS `bound` per molecule (None: unbounded); returns molecules."""
    molecules = [None] * len(counts)
    batches = size_batches(torch.from_numpy(counts), batch_size)
    with torch.inference_mode():
        for number, indices in enumerate(batches):
            index = indices.numpy()
            values = torch.from_numpy(targets[index]).unsqueeze(1)  # [b, 1]
            modifiers = [guidance(guides, values, scale, loaded.schedule, bound)] if scale > 0 else []
            generator = torch.Generator(loaded.device).manual_seed(seed * 100_003 + number)
            batch = sample(loaded.model, loaded.schedule, torch.from_numpy(counts[index]), steps=steps,
                           generator=generator, modifiers=modifiers, device=loaded.device)
            for i, molecule in zip(index.tolist(), batch.molecules()):
                molecules[i] = molecule
    return molecules


def generated_row(label: str, molecules, predicted: np.ndarray, targets: np.ndarray, seconds: float) -> dict:
    checks = [check_molecule(x, types) for x, types in molecules]
    valid = np.array([check.valid for check in checks])
    errors = np.abs(predicted - targets)
    return {"row": label, "mae": float(errors.mean()), "mae_valid": float(errors[valid].mean()) if valid.any() else None,
            "mol_stable": float(np.mean([check.stable for check in checks])), "validity": float(valid.mean()),
            "errors": errors.tolist(), "valid": valid.tolist(), "seconds": seconds}


def paired_bootstrap(first: np.ndarray, second: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """mean(first - second) and its percentile bootstrap 95% interval over resampled pairs."""
    difference = np.asarray(first) - np.asarray(second)
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), (BOOTSTRAP, len(difference)))].mean(axis=1)
    return float(difference.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def baseline_rows(half, chosen, counts, targets, evaluator, name: str, seed: int) -> list[dict]:
    """Naive (shuffled targets), #Atoms (median of c given N over D_b) and QM9 (the lower bound)."""
    predicted = evaluate(evaluator, half.batch(torch.from_numpy(np.asarray(chosen))).molecules())
    shuffled = np.random.default_rng(seed + 1).permutation(targets)
    values, sizes = property_values(half.properties, name), half.num_atoms.numpy()
    median = {int(n): float(np.median(values[sizes == n])) for n in np.unique(sizes)}
    from_n = np.array([median[int(n)] for n in counts])
    return [{"row": "Naive (shuffled targets, upper bound)", "mae": float(np.abs(predicted - shuffled).mean())},
            {"row": "#Atoms (median of c given N over D_b)", "mae": float(np.abs(from_n - targets).mean())},
            {"row": "QM9 (evaluator on the pairs' D_b molecules, lower bound)",
             "mae": float(np.abs(predicted - targets).mean())}]


def run(args: argparse.Namespace) -> dict:
    """The protocol for one property (module docstring); the rows and what produced them, written to args.json
    after every row (a run stopped early keeps the rows it finished)."""
    torch.manual_seed(args.seed)
    settings = SampleSettings(threads=args.threads, precision=args.precision)
    loaded = load_for_sampling(args.checkpoint, settings)
    folder = regressor_folder(args.regressors)
    evaluator_path = folder / f"{args.property}_evaluator.pt"
    evaluator = load_regressor(evaluator_path).module.float().eval()
    request = GuidedRequest.load([(args.property, 0.0)], 1.0, folder, loaded.device)
    half, chosen, counts, targets = draw_pairs(args.property, args.molecules, args.seed)
    rows = baseline_rows(half, chosen, counts, targets, evaluator, args.property, args.seed)
    result = {"property": args.property, "unit": get_property(args.property).unit, "molecules": args.molecules,
              "steps": args.steps, "seed": args.seed, "checkpoint": str(loaded.path),
              "checkpoint_sha256": sha256(loaded.path), "guide_sha256": sha256(folder / f"{args.property}_guide.pt"),
              "evaluator_sha256": sha256(evaluator_path),
              "compute": describe_compute(loaded.device, model_precision(loaded.model)), "rows": rows}
    for scale in [0.0, *args.scales]:
        rows.append(generated(loaded, request, evaluator, counts, targets, scale, args, args.bound if scale else None))
        unguided = rows[3]
        for row in rows[4:]:
            if row["mae"] is not None:
                row["minus_unguided"] = paired_bootstrap(row["errors"], unguided["errors"], args.seed)
        args.json.write_text(json.dumps(result, indent=1))
    return result


def row_label(scale: float, bound: float | None) -> str:
    if scale == 0:
        return "unguided (s = 0)"
    return f"guided, s = {scale:g}" + ("" if bound is None else f", bound {bound:g}")


def generated(loaded, request, evaluator, counts, targets, scale: float, args, bound: float | None) -> dict:
    """The row of one scale (s = 0: unguided) and bound; a diverged run (EEGSDE's update has no clipping) is a row
    saying so."""
    label = row_label(scale, bound)
    start = time.perf_counter()
    try:
        molecules = generate(loaded, request.guides, counts, targets, scale, args.steps, args.seed, args.batch_size,
                             bound)
    except SamplingError as err:
        print(f"{args.property} {label}: diverged ({err})", flush=True)
        return {"row": label, "mae": None, "diverged": str(err), "scale": scale, "bound": bound}
    row = {**generated_row(label, molecules, evaluate(evaluator, molecules), targets, time.perf_counter() - start),
           "scale": scale, "bound": bound}
    print(f"{args.property} {label}: MAE {row['mae']:.4g}, stable {row['mol_stable']:.3f}, "
          f"valid {row['validity']:.3f}, {row['seconds']:.0f} s", flush=True)
    return row


PUBLISHED = {  # MAE in EDM's units. EDM: Table 3 of Hoogeboom et al. 2022 (conditional EDM, its lower bound);
    # EEGSDE: Bao et al. 2023, best scale per property, guiding a conditional EDM (as tabulated by later work)
    "alpha": {"EDM (conditional model)": 2.76, "EEGSDE (guided conditional EDM)": 2.50, "EDM's QM9 lower bound": 0.10},
    "gap": {"EDM (conditional model)": 655, "EEGSDE (guided conditional EDM)": 487, "EDM's QM9 lower bound": 64},
    "homo": {"EDM (conditional model)": 356, "EEGSDE (guided conditional EDM)": 302, "EDM's QM9 lower bound": 39},
    "lumo": {"EDM (conditional model)": 584, "EEGSDE (guided conditional EDM)": 447, "EDM's QM9 lower bound": 36},
    "mu": {"EDM (conditional model)": 1.111, "EEGSDE (guided conditional EDM)": 0.777, "EDM's QM9 lower bound": 0.043},
    "Cv": {"EDM (conditional model)": 1.101, "EEGSDE (guided conditional EDM)": 0.941, "EDM's QM9 lower bound": 0.040},
}


def _number(value) -> str:
    return "" if value is None else f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def table(result: dict) -> str:
    """One property's markdown table."""
    unit = result["unit"]
    lines = [f"### {result['property']} ({unit}): {result['molecules']:,} (N, c) pairs from D_b, "
             f"{result['steps']} ancestral steps",
             "",
             f"Generator: `{Path(result['checkpoint']).name}` (sha256 {result['checkpoint_sha256'][:12]}); guide "
             f"{result['guide_sha256'][:12]}, evaluator {result['evaluator_sha256'][:12]}; {result['compute']}.",
             "",
             "| row | MAE | MAE, valid only | median AE | mol. stable | valid | guided − unguided MAE [95% CI] | "
             "seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        if "diverged" in row:
            lines.append(f"| {row['row']} | diverged ({row['diverged']}) | | | | | | |")
            continue
        median = float(np.median(row["errors"])) if "errors" in row else None
        cells = [row["row"], _number(row["mae"]), _number(row.get("mae_valid")), _number(median),
                 "" if "mol_stable" not in row else f"{100 * row['mol_stable']:.1f}%",
                 "" if "validity" not in row else f"{100 * row['validity']:.1f}%"]
        difference = row.get("minus_unguided")
        cells.append("" if difference is None else f"{_number(difference[0])} [{_number(difference[1])}, "
                                                   f"{_number(difference[2])}]")
        cells.append("" if "seconds" not in row else f"{row['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    for label, value in PUBLISHED[result["property"]].items():
        lines.append(f"| {label} (published) | {_number(value)} | | | | | | |")
    return "\n".join(lines)


def row_key(row: dict) -> tuple[float, float]:
    """(scale, bound) of a generated row, an unbounded row's bound read as infinite (rows before bounds have none)."""
    bound = row.get("bound")
    return row["scale"], math.inf if bound is None else bound


def merged(results: list[dict]) -> list[dict]:
    """One result per property: the rows of runs of the same pairs (same property, size, seed, steps, generator),
    each (scale, bound) once, in order of the scale, the unbounded row after the bounded ones; ValueError for runs of
    different pairs."""
    by_property: dict[str, dict] = {}
    for result in results:
        first = by_property.setdefault(result["property"], {**result, "rows": list(result["rows"])})
        if first is result:
            continue
        keys = ("molecules", "seed", "steps", "checkpoint_sha256", "guide_sha256", "evaluator_sha256")
        if any(first[key] != result[key] for key in keys):
            raise ValueError(f"runs of {result['property']} on different pairs or files cannot be merged")
        keys = {row_key(row) for row in first["rows"] if "scale" in row}
        first["rows"] += [row for row in result["rows"] if "scale" in row and row_key(row) not in keys]
    for result in by_property.values():
        result["rows"] = ([row for row in result["rows"] if "scale" not in row]
                          + sorted((row for row in result["rows"] if "scale" in row), key=row_key))
    return list(by_property.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="the protocol for one property")
    run_parser.add_argument("--property", required=True)
    run_parser.add_argument("--molecules", type=int, default=1000)
    run_parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    run_parser.add_argument("--steps", type=int, default=100)
    run_parser.add_argument("--seed", type=int, default=0)
    run_parser.add_argument("--batch-size", type=int, default=100)
    run_parser.add_argument("--checkpoint", type=Path, default=None)
    run_parser.add_argument("--regressors", type=Path, default=None)
    run_parser.add_argument("--bound", type=float, default=None,
                            help="bound the guidance term's RMS per molecule (molgen sample --guidance-bound)")
    run_parser.add_argument("--threads", type=int, default=None)
    run_parser.add_argument("--precision", default="auto")
    run_parser.add_argument("--json", type=Path, required=True)
    table_parser = commands.add_parser("table", help="markdown tables from run results (runs of the same pairs at "
                                                     "other scales merged into one table)")
    table_parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        results = merged([json.loads(path.read_text()) for path in args.results])
        print("\n\n".join(table(result) for result in results))


if __name__ == "__main__":
    main()
