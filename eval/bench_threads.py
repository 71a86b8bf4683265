"""Sampling throughput alone and beside one busy process: molgen's thread choice on a shared CPU.

Usage:
    python eval/bench_threads.py --seconds 60 --repeats 3

Each run samples 30 molecules x 50 ancestral steps over and over for `--seconds` and reports molecules/s; the
median of `--repeats` runs is taken alone and with one competing busy process (`python -c 'while 1: pass'`).
Rows: molgen's default (threads = the cores this process may use that no normal-priority process keeps busy,
chosen when sampling starts: molgen.threads), two threads (PyTorch's default on a 2-core machine: one per
core) with OpenMP's default wait and with OMP_WAIT_POLICY=PASSIVE (idle threads sleep), and one thread.
The competitor starts before the sampling process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from code_versions import run_task

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
SETTINGS = {
    "molgen default (free cores)": ({}, None),
    "2 threads": ({}, 2),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "one thread": ({}, 1),
}


def median_throughput(env: dict, threads: int | None, options: dict, repeats: int, competitor: bool) -> dict:
    """The median molecules/s of `repeats` runs, with or without a busy process beside them."""
    busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if competitor else None
    time.sleep(0.5)
    try:
        runs = [run_task(None, "throughput", {**options, "threads": threads}, {"MOLGEN_THREADS": "", **env})
                for _ in range(repeats)]
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return {**runs[0], "molecules_per_second": statistics.median(r["molecules_per_second"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--only", type=int, nargs="*", default=None, metavar="ROW",
                        help="measure only these rows (0-based, in the order above)")
    args = parser.parse_args()
    options = {"checkpoint": str(args.checkpoint), "molecules": 30, "steps": 50, "seconds": args.seconds,
               "precision": args.precision}
    print(f"30 molecules x 50 ancestral steps, repeated for {args.seconds:g} s, median of {args.repeats}")
    print("| setting | CPU | threads | precision | alone mol/s | beside a busy process mol/s | share |")
    print("|---|---|---|---|---|---|---|")
    for row, (name, (env, threads)) in enumerate(SETTINGS.items()):
        if args.only is not None and row not in args.only:
            continue
        alone = median_throughput(env, threads, options, args.repeats, competitor=False)
        shared = median_throughput(env, threads, options, args.repeats, competitor=True)
        share = shared["molecules_per_second"] / alone["molecules_per_second"]
        print(f"| {name} | {alone['cpu']} | {alone['threads']} | {alone['precision']} | "
              f"{alone['molecules_per_second']:.1f} | {shared['molecules_per_second']:.1f} | {100 * share:.0f}% |",
              flush=True)


if __name__ == "__main__":
    main()
