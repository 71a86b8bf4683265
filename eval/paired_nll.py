"""The shipping test: is a candidate checkpoint's NLL lower than the shipped file's, molecule by molecule?

Both checkpoints' sampling weights (the EMA) are scored with EDM's variational bound on the same validation molecules
(all 17,748 by default) with the same noise seed, so each molecule's difference is paired; the table gives each mean
NLL ± standard error and the mean paired difference (candidate - reference) ± its standard error. A candidate replaces
the shipped file only when that difference is negative.

    python eval/paired_nll.py checkpoints/qm9_ponita_cpu.pt runs/qm9_ponita_cpu_cooldown/shipped.pt --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from molgen.batch import size_batches
from molgen.checkpoint import load_model
from molgen.data.qm9 import QM9Dataset
from molgen.diffusion.likelihood import nll_per_molecule


def per_molecule_nll(path: Path, molecules: int | None, batch_size: int, seed: int) -> torch.Tensor:
    """NLL of each of the first `molecules` validation molecules (all if None), one pass, float64 [B]."""
    valid = QM9Dataset("valid")
    counts = valid.num_atoms if molecules is None else valid.num_atoms[:molecules]
    batches = [valid.batch(chunk) for chunk in size_batches(counts, batch_size)]
    loaded = load_model(path)
    with torch.inference_mode():
        return nll_per_molecule(loaded.model, loaded.schedule, batches, loaded.node_distribution, 1, seed, True, None)


def mean_and_error(values: torch.Tensor) -> str:
    """'mean ± standard error' of per-molecule values."""
    return f"{float(values.mean()):.2f} ± {float(values.std(unbiased=True)) / len(values) ** 0.5:.2f}"


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="the shipped checkpoint")
    parser.add_argument("candidate", type=Path, help="the checkpoint that would replace it")
    parser.add_argument("--molecules", type=int, default=None, help="the first N validation molecules (default: all)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="the noise seed, the same for both checkpoints")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reference, candidate = (per_molecule_nll(path, args.molecules, args.batch_size, args.seed)
                            for path in (args.reference, args.candidate))
    print(f"{len(reference):,} validation molecules, noise seed {args.seed}, EMA weights, fp32, "
          f"{torch.get_num_threads()} thread(s)")
    print("| checkpoint | sha256 | NLL (nats per molecule) |\n|---|---|---|")
    for path, values in ((args.reference, reference), (args.candidate, candidate)):
        print(f"| {path} | {sha256(path)[:16]} | {mean_and_error(values)} |")
    print(f"| paired difference (candidate - reference) | | {mean_and_error(candidate - reference)} |")


if __name__ == "__main__":
    main()
