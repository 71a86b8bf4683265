"""Sampling speed of the shipped model: the code of commit 860b5b7 against today's, in one run, same checkpoint.

Usage:
    python eval/bench_sampling.py                      # ancestral 100 steps, 100 molecules, batch 100
    python eval/bench_sampling.py --cpus avx2 --steps 10   # the AVX2-only rows (emulated on an AVX-512 CPU)
    python eval/bench_sampling.py --cpus native --precisions default --steps 50 --molecules 1,10,30,100,1000
                                                       # small batches: the fixed cost per step

Each row samples one `--molecules` count of molecules (atom counts from the checkpoint's training histogram,
seed 0) with EDM's ancestral sampler on `--steps` strided steps in batches of `--batch-size`, through molgen's
own sampling driver, once under 860b5b7's molgen and once under this checkout's, each in a fresh process with
`--threads` threads; the seconds are the driver's sampling time (loading and process start not included).
"default" is each version's own choice (860b5b7: bf16, from the checkpoint's config; today: `auto`). On an
AVX-512 machine the avx2 rows cap the ISA (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`) and say
"emulated". The checkpoint is the test fixture copy of 860b5b7's shipped model, which both versions read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from code_versions import EMULATE_AVX2, code_at, parse_sizes, run_task

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
PRECISIONS = {"native": ("default", "fp32", "bf16"), "avx2": ("default", "fp32")}


def speedup_row(molecules: int, precision: str, old: dict, new: dict) -> str:
    """One markdown row: CPU kind (today's process), molecules, precision asked, both versions' seconds (and the
    precision each ran in) and the speed-up old / new."""
    return (f"| {new['cpu']} | {molecules} | {precision} | {old['seconds']:.2f} ({old['precision']}) | "
            f"{new['seconds']:.2f} ({new['precision']}) | {old['seconds'] / new['seconds']:.2f}x |")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="860b5b7", help="the commit to compare with")
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--molecules", type=parse_sizes, default="100", help="molecule counts, one row each: 1,10,30")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpus", default="native,avx2", help="native and/or avx2 (emulated AVX2-only)")
    parser.add_argument("--precisions", default=None,
                        help="precisions asked, e.g. default,fp32 (default: default,fp32,bf16 native; default,fp32 avx2)")
    args = parser.parse_args()
    if not set(args.cpus.split(",")) <= set(PRECISIONS):
        parser.error(f"--cpus {args.cpus!r}: each must be native or avx2")
    if args.precisions is not None and not set(args.precisions.split(",")) <= {"default", "fp32", "bf16"}:
        parser.error(f"--precisions {args.precisions!r}: each must be default, fp32 or bf16")
    if not args.molecules:
        parser.error("--molecules: give at least one count")
    return args


def main() -> None:
    args = parse_arguments()
    try:
        baseline = code_at(args.baseline)
    except ValueError as err:
        raise SystemExit(f"--baseline: {err}") from None
    options = {"checkpoint": str(args.checkpoint), "steps": args.steps, "batch_size": args.batch_size,
               "threads": args.threads}
    print(f"ancestral {args.steps} steps, batch {args.batch_size}, {args.threads} threads, "
          f"checkpoint {args.checkpoint.name}")
    print(f"| CPU | molecules | precision asked | {args.baseline} s (precision) | today s (precision) | speed-up |")
    print("|---|---|---|---|---|---|")
    for cpu in args.cpus.split(","):
        env = EMULATE_AVX2 if cpu == "avx2" else {}
        precisions = args.precisions.split(",") if args.precisions is not None else PRECISIONS[cpu]
        for precision in precisions:
            for molecules in args.molecules:
                row = {**options, "precision": precision, "molecules": molecules}
                old = run_task(baseline, "sample", row, env)
                new = run_task(None, "sample", row, env)
                print(speedup_row(molecules, precision, old, new), flush=True)


if __name__ == "__main__":
    main()
