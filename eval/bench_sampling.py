"""Sampling speed of the shipped model: the code of commit 860b5b7 against today's, in one run, same checkpoint.

Usage:
    python eval/bench_sampling.py                      # ancestral 100 steps, 100 molecules, batch 100
    python eval/bench_sampling.py --cpus avx2 --steps 10   # the AVX2-only rows (emulated on an AVX-512 CPU)

Each row samples `--molecules` molecules (atom counts from the checkpoint's training histogram, seed 0) with EDM's
ancestral sampler on `--steps` strided steps in batches of `--batch-size`, through molgen's own sampling driver,
once under 860b5b7's molgen and once under this checkout's, each in a fresh process with `--threads` threads.
"default" is each version's own choice (860b5b7: bf16, from the checkpoint's config; today: `auto`). On an
AVX-512 machine the avx2 rows cap the ISA (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`) and say
"emulated". The checkpoint is the test fixture copy of 860b5b7's shipped model, which both versions read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from code_versions import EMULATE_AVX2, code_at, run_task

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
PRECISIONS = {"native": ("default", "fp32", "bf16"), "avx2": ("default", "fp32")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="860b5b7", help="the commit to compare with")
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--molecules", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpus", default="native,avx2", help="native and/or avx2 (emulated AVX2-only)")
    args = parser.parse_args()
    baseline = code_at(args.baseline)
    options = {"checkpoint": str(args.checkpoint), "molecules": args.molecules, "steps": args.steps,
               "batch_size": args.batch_size, "threads": args.threads}
    print(f"{args.molecules} molecules, ancestral {args.steps} steps, batch {args.batch_size}, {args.threads} threads, "
          f"checkpoint {args.checkpoint.name}")
    print(f"| CPU | precision asked | {args.baseline} s (precision) | today s (precision) | speed-up |")
    print("|---|---|---|---|---|")
    for cpu in args.cpus.split(","):
        env = EMULATE_AVX2 if cpu == "avx2" else {}
        for precision in PRECISIONS[cpu]:
            old = run_task(baseline, "sample", {**options, "precision": precision}, env)
            new = run_task(None, "sample", {**options, "precision": precision}, env)
            print(f"| {new['cpu']} | {precision} | {old['seconds']:.1f} ({old['precision']}) | "
                  f"{new['seconds']:.1f} ({new['precision']}) | {old['seconds'] / new['seconds']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
