"""Samplers compared on one checkpoint: EDM's metrics and speed, each sampler on the same molecules' atom counts.

For each row SAMPLER:STEPS:N, N molecules are sampled from the checkpoint's EMA weights with the same seed (so
every row draws the same atom counts when N is the same) and scored with EDM's metrics (95% Wilson intervals in
parentheses). Network evaluations are per molecule, from the sampler table. Molecules / s is wall time of the
sampling alone; on a machine that other processes share, compare it only between rows of one run.

Usage: python eval/sampler_comparison.py [--checkpoint PATH]
       [--rows dpmpp2m:20:1000,dpmpp2m:50:1000,dpmpp2m:100:1000,ancestral:100:1000] [--threads 2]
       [--precision auto] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
from pathlib import Path

from molgen.choices import SAMPLER_TABLE
from molgen.evaluation import intervals
from molgen.precision import describe_compute, model_precision
from molgen.sampling import SampleSettings, generate, load_for_sampling

HEADER = ("| sampler | steps | network evaluations | molecules | atom % | molecule % | valid % | molecules / s |\n"
          "|---|---|---|---|---|---|---|---|")


def parse_rows(text: str) -> list[tuple[str, int, int]]:
    """SAMPLER:STEPS:N items, comma-separated -> (sampler, steps, N)."""
    rows = []
    for item in text.split(","):
        sampler, steps, count = item.split(":")
        rows.append((sampler, int(steps), int(count)))
    return rows


def sha256(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cell(metrics, bounds, name: str) -> str:
    low, high = bounds[name]
    return f"{100 * getattr(metrics, name):.1f} ({100 * low:.1f}–{100 * high:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--rows", default="dpmpp2m:20:1000,dpmpp2m:50:1000,dpmpp2m:100:1000,ancestral:100:1000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    base = SampleSettings(device="cpu", threads=args.threads, precision=args.precision, seed=args.seed,
                          batch_size=args.batch_size)
    loaded = load_for_sampling(args.checkpoint, base)
    print(f"Checkpoint {loaded.path} (step {loaded.step:,}, sha256 {sha256(loaded.path)}), EMA weights, seed "
          f"{args.seed}, batches of {args.batch_size}; {cpu_name()}, "
          f"{describe_compute(loaded.device, model_precision(loaded.model))}.\n", flush=True)
    print(HEADER, flush=True)
    for sampler, steps, count in parse_rows(args.rows):
        settings = SampleSettings(num_molecules=count, sampler=sampler, steps=steps, seed=args.seed,
                                  batch_size=args.batch_size, device="cpu", threads=args.threads,
                                  precision=args.precision)
        samples = generate(loaded, settings, progress=False)
        metrics = samples.metrics()
        bounds = intervals(metrics)
        print(f"| {sampler} | {steps} | {SAMPLER_TABLE[sampler].network_calls(steps)} | {count:,} | "
              + " | ".join(cell(metrics, bounds, name) for name in ("atom_stable", "mol_stable", "validity"))
              + f" | {count / samples.seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
