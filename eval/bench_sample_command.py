"""The whole `molgen sample` command timed as one child process, beside the sampling time it reports itself.

Usage:
    python eval/bench_sample_command.py                           # molgen sample --num-molecules 1000 --seed 0
    python eval/bench_sample_command.py --num-molecules 10 --steps 5 --threads 1   # other options go to molgen

Runs `python -m molgen sample --num-molecules N --seed 0 --out TMP/samples [other options]` with this checkout's
molgen (its default checkpoint, sampler, steps and thread choice unless given) and deletes TMP afterwards. Prints
a one-row markdown table: the compute line of summary.json (CPU kind, threads, precision), the sampling seconds
of summary.json, the whole command's wall seconds (process start, imports, loading, sampling, checks, writing
the files) and the child's CPU seconds (user + system, `resource.getrusage(RUSAGE_CHILDREN)`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from code_versions import ROOT, checkout_label, code_environment


def command_table(summary: dict, wall_seconds: float, cpu_seconds: float) -> str:
    """A markdown table of one timed command: header, separator and one row from its summary.json."""
    molecules = summary["settings"]["num_molecules"]
    return "\n".join([
        "| compute | molecules | sampling s (summary.json) | whole command s | outside sampling s | child CPU s |",
        "|---|---|---|---|---|---|",
        f"| {summary['compute']} | {molecules} | {summary['seconds']:.1f} | {wall_seconds:.1f} | "
        f"{wall_seconds - summary['seconds']:.1f} | {cpu_seconds:.1f} |"])


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_sample(molecules: int, options: list[str], folder: Path) -> tuple[dict, float, float]:
    """Run `molgen sample` into folder/samples; (its summary.json, wall seconds, the child's CPU seconds)."""
    out = folder / "samples"
    command = [sys.executable, "-m", "molgen", "sample", "--num-molecules", str(molecules), "--seed", "0",
               "--out", str(out), *options]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, env=code_environment(None), cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text()), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-molecules", type=int, default=1000)
    args, options = parser.parse_known_args()
    if args.num_molecules < 1:
        parser.error(f"--num-molecules must be at least 1, got {args.num_molecules}")
    with tempfile.TemporaryDirectory(prefix="molgen-bench-") as folder:
        summary, wall, cpu = timed_sample(args.num_molecules, options, Path(folder))
    checkpoint = ROOT / summary["checkpoint"]  # a relative path is relative to the child's folder, ROOT
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    command = " ".join(["molgen sample --num-molecules", str(args.num_molecules), "--seed 0", *options])
    print(f"`{command}` at {checkout_label()}; checkpoint {checkpoint.name} (sha256 {sha}), "
          f"{summary['settings']['sampler']} {summary['settings']['steps']} steps, "
          f"batch {summary['settings']['batch_size']}\n")
    print(command_table(summary, wall, cpu))


if __name__ == "__main__":
    main()
