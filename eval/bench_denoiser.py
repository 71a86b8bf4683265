"""Training speed of the shipped model's denoiser: the code of commit 860b5b7 against today's, in one run.

Usage:
    python eval/bench_denoiser.py                    # 8 timed steps per row, 2 threads, native and emulated AVX2

A training step: a size-bucketed batch of 64 QM9 training molecules, EDM's l2 loss, backward, AdamW (amsgrad),
on the checkpoint's PONITA (the test fixture copy of 860b5b7's shipped model, which both versions read). Each
row runs once under 860b5b7's molgen and once under this checkout's, each in a fresh process, after one untimed
warm-up step; both see the same batches and noise. The trainer around the step (EMAs, clipping, logging) is not
included. The avx2 rows cap the ISA on an AVX-512 machine and say "emulated".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from code_versions import EMULATE_AVX2, code_at, run_task

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
PRECISIONS = {"native": ("fp32", "bf16"), "avx2": ("fp32",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="860b5b7", help="the commit to compare with")
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpus", default="native,avx2", help="native and/or avx2 (emulated AVX2-only)")
    args = parser.parse_args()
    baseline = code_at(args.baseline)
    options = {"checkpoint": str(args.checkpoint), "steps": args.steps, "threads": args.threads}
    print(f"training step: batch 64, {args.steps} timed steps, {args.threads} threads, checkpoint {args.checkpoint.name}")
    print(f"| CPU | precision | {args.baseline} mol/s | today mol/s | speed-up |")
    print("|---|---|---|---|---|")
    for cpu in args.cpus.split(","):
        env = EMULATE_AVX2 if cpu == "avx2" else {}
        for precision in PRECISIONS[cpu]:
            old = run_task(baseline, "train", {**options, "precision": precision}, env)
            new = run_task(None, "train", {**options, "precision": precision}, env)
            print(f"| {new['cpu']} | {precision} | {old['molecules_per_second']:.0f} | "
                  f"{new['molecules_per_second']:.0f} | {new['molecules_per_second'] / old['molecules_per_second']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
