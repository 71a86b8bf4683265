"""Scores of property-regressor files: the MAE on the whole validation split and on EDM's halves D_a and D_b.

For an evaluator (clean molecules, trained on D_a) the MAE on D_b is the protocol's "QM9 lower bound" row (EDM's
classifier on real molecules: α 0.10, Δε 64 meV). A guide (noise-conditional, trained on D_b) is scored on clean
molecules and on z_t with t ~ U{0..T} (one noise seed). Prints a Markdown table.

    python eval/regressor_scores.py checkpoints/regressors/*_evaluator.pt --on D_b --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch

from molgen.data.qm9 import QM9Dataset, load_qm9_arrays
from molgen.diffusion import PolynomialSchedule
from molgen.property.checkpoint import load_regressor
from molgen.property.halves import load_half
from molgen.property.training import PropertyValues, validation_mae


def scores(path: Path, datasets: dict, arrays, seed: int) -> list[str]:
    """The table cells of one regressor file."""
    loaded = load_regressor(path)
    meta = loaded.metadata
    values = PropertyValues(arrays, loaded.property.name)
    schedule = PolynomialSchedule(meta["schedule"]["timesteps"], meta["schedule"]["precision"])
    cells = []
    for dataset in datasets.values():
        mae = validation_mae(loaded.module, dataset, values, schedule, len(dataset), 256,
                             seed if loaded.noise_conditional else None)
        noisy = f" / {mae['val_mae_noisy']:.4g}" if "val_mae_noisy" in mae else ""
        cells.append(f"{mae['val_mae']:.4g}{noisy}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    kind = "guide (z_t)" if loaded.noise_conditional else "evaluator (clean)"
    return [f"`{path.name}` ({digest})", loaded.property.name, loaded.property.unit, kind, meta["half"],
            f"{meta['steps']:,}", f"{meta['cpu_seconds'] / 60:.1f}", *cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the guides' z_t")
    parser.add_argument("--on", nargs="+", choices=("valid", "D_a", "D_b"), default=["valid", "D_a", "D_b"],
                        help="the data sets to score on")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arrays = load_qm9_arrays(progress=False)
    build = {"valid": lambda: QM9Dataset("valid", arrays=arrays), "D_a": lambda: load_half("first", arrays=arrays),
             "D_b": lambda: load_half("second", arrays=arrays)}
    datasets = {name: build[name]() for name in args.on}
    start = time.process_time()
    columns = ["file (sha256)", "property", "unit", "kind", "trained on", "steps", "CPU min",
               *(f"MAE {name} (clean / z_t)" for name in datasets)]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for path in args.files:
        print("| " + " | ".join(scores(path, datasets, arrays, args.seed)) + " |", flush=True)
    print(f"\n{time.process_time() - start:.0f} CPU s, {args.threads} thread(s), fp32")


if __name__ == "__main__":
    main()
