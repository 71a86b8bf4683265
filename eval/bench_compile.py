"""train.compile: the shipped config's training step, eager against torch.compile, each in a fresh process.

Usage:
    python eval/bench_compile.py                     # 16 warm-up + 32 timed steps per row, 2 threads
    python eval/bench_compile.py --steps 4 --warmup 2 --cpus native --precisions fp32   # a quick check

A step is the trainer's (molgen.train.loop.Trainer.train_step): a size-bucketed batch of 64 QM9 training
molecules with configs/qm9_ponita_cpu.yaml's settings, EDM's l2 loss, backward, clipping, AdamW (amsgrad) and the
EMAs, on the test fixture's PONITA (860b5b7's shipped model). Each row runs the same batches twice, eager and with
train.compile: true, each in a fresh Python process with an empty inductor cache (so the compile time is what a
first run pays). Inductor compiles the network once more when a bucket's O·N² first passes 4,096 (N > 22 with 8
orientations: its accumulation heuristic for larger reductions), so a run compiles two graphs, and a step that
compiled one (seen by torch._dynamo's graph counter) is not timed. Steady step: the mean of the timed steps after
the warm-up that compiled nothing; compile seconds: all steps' time minus as many steady steps. Break-even: the molecules after which the compiled run has caught up,
compile seconds / (1 / eager rate - 1 / compiled rate), also in epochs of QM9's training split. The avx2 rows cap
the ISA on an AVX-512 machine (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2) and say "emulated".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from code_versions import EMULATE_AVX2, ROOT, code_environment

FIXTURE = ROOT / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
CONFIG = ROOT / "configs" / "qm9_ponita_cpu.yaml"
PRECISIONS = {"native": ("bf16", "fp32"), "avx2": ("fp32",)}
QM9_TRAIN = 100_000  # molecules of an epoch, for the break-even in epochs


def measure(options: dict) -> dict:
    """(In the child process.) The trainer's step times, eager or compiled, as `main` describes."""
    import torch
    from torch._dynamo.utils import counters

    from bench_tasks import cpu_label, load_checkpoint_model
    from molgen.config import load_config
    from molgen.data.qm9 import QM9Dataset
    from molgen.train.loop import Trainer

    model = load_checkpoint_model(options["checkpoint"]).model.requires_grad_(True)
    with tempfile.TemporaryDirectory() as run_dir:
        overrides = {"train.compile": options["compile"], "train.precision": options["precision"],
                     "train.threads": options["threads"], "train.device": "cpu", "run_dir": run_dir}
        trainer = Trainer(load_config(CONFIG, overrides), QM9Dataset("train"), model=model)
        seconds, molecules, compiling = [], [], []
        for _ in range(options["warmup"] + options["steps"]):
            graphs, start = counters["stats"]["unique_graphs"], time.perf_counter()
            molecules.append(trainer.train_step().num_molecules)
            seconds.append(time.perf_counter() - start)
            compiling.append(counters["stats"]["unique_graphs"] > graphs)  # this step compiled a graph
    timed = [i for i in range(options["warmup"], len(seconds)) if not compiling[i]]
    steady = sum(seconds[i] for i in timed) / len(timed)
    return {"compile_seconds": sum(seconds) - len(seconds) * steady, "step_seconds": steady,
            "molecules_per_second": sum(molecules[i] for i in timed) / sum(seconds[i] for i in timed),
            "graphs": counters["stats"]["unique_graphs"], "compiled_after_warmup": sum(compiling[options["warmup"]:]),
            "cpu": cpu_label(), "threads": torch.get_num_threads(), "precision": trainer.precision}


def run_child(options: dict, env: dict[str, str]) -> dict:
    """`measure(options)` in a fresh process with `env` and an empty inductor cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = code_environment(None, {**env, "TORCHINDUCTOR_CACHE_DIR": cache})
        result = subprocess.run([sys.executable, __file__, "--child", json.dumps(options)], env=env, cwd=ROOT,
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{'compiled' if options['compile'] else 'eager'} step failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table_row(eager: dict, compiled: dict) -> str:
    """One markdown row: CPU, precision, compile seconds, the two rates, the speed-up and the break-even."""
    saved = 1 / eager["molecules_per_second"] - 1 / compiled["molecules_per_second"]  # seconds per molecule
    pays = compiled["compile_seconds"] / saved if saved > 0 else None
    even = "never | never" if pays is None else f"{pays:,.0f} | {pays / QM9_TRAIN:.2f}"
    late = compiled["compiled_after_warmup"]
    note = f" ({compiled['graphs']} graphs, {late} after the warm-up)" if late else f" ({compiled['graphs']} graphs)"
    return (f"| {compiled['cpu']} | {compiled['precision']} | {compiled['compile_seconds']:.1f}{note} | "
            f"{eager['molecules_per_second']:.0f} | {compiled['molecules_per_second']:.0f} | "
            f"{compiled['molecules_per_second'] / eager['molecules_per_second']:.2f}x | {even} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--warmup", type=int, default=16, help="steps that pay the compile time")
    parser.add_argument("--steps", type=int, default=32, help="timed steady steps after the warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpus", default="native,avx2", help="native and/or avx2 (emulated AVX2-only)")
    parser.add_argument("--precisions", default="bf16,fp32", help="of the native rows (avx2 rows: fp32)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    options = {"checkpoint": str(args.checkpoint), "warmup": args.warmup, "steps": args.steps,
               "threads": args.threads}
    print(f"training step: batch 64, {args.warmup} warm-up + {args.steps} timed steps, {args.threads} threads, "
          f"checkpoint {args.checkpoint.name}")
    print("| CPU | precision | compile s | eager mol/s | compiled mol/s | speed-up | break-even molecules | "
          "break-even epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for cpu in args.cpus.split(","):
        env = EMULATE_AVX2 if cpu == "avx2" else {}
        for precision in PRECISIONS[cpu] if cpu == "avx2" else args.precisions.split(","):
            rows = [run_child({**options, "precision": precision, "compile": flag}, env) for flag in (False, True)]
            print(table_row(*rows), flush=True)


if __name__ == "__main__":
    main()
