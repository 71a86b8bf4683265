"""Profile one training step and one sampling step of the shipped config: top operators by self CPU time.

Usage:
    python eval/profile_step.py --code 35ce544 --out before.md      # the molgen/ of a past commit
    python eval/profile_step.py --out after.md                      # this checkout's molgen/
    python eval/profile_step.py --training "" --sampling-batches 30 # one section, printed only

Every section runs in a fresh process whose `molgen` is the commit's package (extracted by
eval/code_versions.py; it must have today's loading API, `molgen.checkpoint.load_model`, so 472b08b or later)
or this checkout's, with `--threads` threads:
- training, once per `--training` entry PRECISION:CPU (default: bf16 on the native CPU, and fp32 with the ISA
  capped to AVX2 by `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, "AVX2 (emulated)"): `--training-steps`
  steps on size-bucketed batches of 64 QM9 training molecules, EDM's l2 loss, backward, AdamW (amsgrad), after
  2 warm-up steps;
- sampling, once per `--sampling-batches` size, in `--sampling-precision`: `--samplings` ancestral samplings of
  `--sampling-steps` strided steps each plus the final t = 0 call, atom counts from the training histogram,
  under inference mode, after one warm-up sampling.
Each section's heading names the CPU kind, threads and precision (`molgen.precision.describe_compute`); the
output's heading names the code and the checkpoint. `--out` writes the markdown (`--append`: adds to the file).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from code_versions import EMULATE_AVX2, ROOT, checkout_label, code_at, code_environment, parse_sizes

FIXTURE = ROOT / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
CPUS = {"native": {}, "avx2": EMULATE_AVX2}


def parse_training(text: str) -> list[tuple[str, str]]:
    """'bf16:native,fp32:avx2' -> [('bf16', 'native'), ('fp32', 'avx2')]; '' -> []."""
    entries = []
    for entry in filter(None, text.split(",")):
        precision, _, cpu = entry.partition(":")
        if precision not in ("fp32", "bf16") or cpu not in CPUS:
            raise argparse.ArgumentTypeError(f"training entry {entry!r} is not PRECISION:CPU with PRECISION fp32 "
                                             f"or bf16 and CPU native or avx2")
        entries.append((precision, cpu))
    return entries


def operator_table(events, rows: int) -> str:
    """Markdown table of the `rows` events with the most self CPU time (of a profiler's `key_averages()`), with
    each one's share of all events' self CPU time and the total."""
    events = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = ["| operator | calls | self CPU ms | % of total |", "|---|---|---|---|"]
    for event in events[:rows]:
        lines.append(f"| `{event.key}` | {event.count} | {event.self_cpu_time_total / 1e3:.1f} | "
                     f"{100 * event.self_cpu_time_total / total:.1f} |")
    lines.append(f"| total | | {total / 1e3:.1f} | 100 |")
    return "\n".join(lines)


def training_steps(model, schedule, count: int):
    """A closure running `count` training steps on fixed batches of 64 training molecules."""
    import torch

    from molgen.data.qm9 import QM9Dataset
    from molgen.data.sampler import SizeBucketBatchSampler
    from molgen.diffusion import diffusion_loss

    train = QM9Dataset("train")
    epoch = SizeBucketBatchSampler(train.num_atoms, batch_size=64, seed=0).epoch(0)
    batches = [train.batch(indices) for indices in epoch[:count]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, amsgrad=True)
    generator = torch.Generator().manual_seed(0)
    model.train()

    def run() -> None:
        for batch in batches:
            loss = diffusion_loss(model, schedule, batch, generator=generator).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def sampling_runs(loaded, count: int, molecules: int, steps: int):
    """A closure running `count` ancestral samplings of `molecules` molecules on `steps` strided steps each (one
    network call per step plus the final t = 0 call)."""
    import torch

    from molgen.diffusion import sample

    generator = torch.Generator().manual_seed(0)
    counts = loaded.node_distribution.sample(molecules, generator)  # [B]
    loaded.model.eval()

    def run() -> None:
        with torch.inference_mode():
            for _ in range(count):
                sample(loaded.model, loaded.schedule, counts, sampler="ancestral", steps=steps, generator=generator)

    return run


def check_imported_code() -> None:
    """Stop unless `molgen` was imported from the first PYTHONPATH entry (the code the parent chose)."""
    import molgen

    expected = Path(os.environ.get("PYTHONPATH", str(ROOT)).split(os.pathsep)[0]).resolve()
    if Path(molgen.__file__).resolve().parents[1] != expected:
        raise SystemExit(f"molgen was imported from {molgen.__file__}, not from {expected}")


def profile_section(args: argparse.Namespace) -> str:
    """One section (run in the child process): its heading and the table of the top operators."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from molgen.checkpoint import load_model
    from molgen.precision import describe_compute, resolve_precision, set_precision
    from molgen.threads import configure_threads

    check_imported_code()
    configure_threads(args.threads)
    loaded = load_model(args.checkpoint)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    set_precision(loaded.model, precision)
    if args.section == "train":
        title = f"One training step x {args.training_steps} (batch 64, forward + backward + AdamW)"
        warmup = training_steps(loaded.model, loaded.schedule, 2)
        run = training_steps(loaded.model, loaded.schedule, args.training_steps)
    else:
        title = (f"Sampling: {args.samplings} x ({args.sampling_steps} ancestral step"
                 f"{'s' if args.sampling_steps > 1 else ''} + the final call), batch {args.batch}")
        warmup = sampling_runs(loaded, 1, args.batch, args.sampling_steps)
        run = sampling_runs(loaded, args.samplings, args.batch, args.sampling_steps)
    warmup()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    compute = describe_compute(torch.device("cpu"), precision)
    return f"### {title}: {compute}\n\n{operator_table(prof.key_averages(), args.rows)}\n"


def child_command(args: argparse.Namespace, section: str, precision: str, batch: int = 0) -> list[str]:
    """The command line profiling one section in a fresh process."""
    return [sys.executable, __file__, "--section", section, "--precision", precision, "--batch", str(batch),
            "--checkpoint", str(args.checkpoint.resolve()), "--threads", str(args.threads), "--rows", str(args.rows),
            "--training-steps", str(args.training_steps), "--samplings", str(args.samplings),
            "--sampling-steps", str(args.sampling_steps)]


def run_sections(args: argparse.Namespace, code: Path | None) -> list[str]:
    """Every section asked for, each profiled in its own process under `code` (None: this checkout)."""
    jobs = [(child_command(args, "train", precision), CPUS[cpu]) for precision, cpu in args.training]
    jobs += [(child_command(args, "sample", args.sampling_precision, batch), {}) for batch in args.sampling_batches]
    sections = []
    for command, env in jobs:
        result = subprocess.run(command, env=code_environment(code, env), cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"profiling {' '.join(command[2:6])} failed:\n{result.stderr[-2000:]}")
        sections.append(result.stdout.strip())
        print(sections[-1] + "\n", flush=True)
    return sections


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", default=None, help="profile the molgen/ of this commit (default: this checkout)")
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--training", type=parse_training, default="bf16:native,fp32:avx2",
                        help="training sections, PRECISION:CPU with CPU native or avx2 (emulated); '' for none")
    parser.add_argument("--training-steps", type=int, default=3, help="profiled training steps per section")
    parser.add_argument("--sampling-batches", type=parse_sizes, default="30,100", help="'' for no sampling section")
    parser.add_argument("--sampling-precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--samplings", type=int, default=5, help="profiled samplings per section")
    parser.add_argument("--sampling-steps", type=int, default=1, help="strided ancestral steps per sampling")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown to this file")
    parser.add_argument("--append", action="store_true", help="add to --out instead of replacing it")
    parser.add_argument("--section", choices=("train", "sample"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    arguments = parser()
    args = arguments.parse_args()
    if args.section is not None:  # the child process of one section
        print(profile_section(args))
        return
    if not args.checkpoint.is_file():
        arguments.error(f"--checkpoint {args.checkpoint}: no such file")
    try:
        code = code_at(args.code) if args.code is not None else None
    except ValueError as err:
        arguments.error(str(err).splitlines()[0])
    label = f"{args.code}" if code is not None else f"this checkout ({checkout_label()})"
    checkpoint = args.checkpoint.resolve()
    shown = checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    header = (f"## molgen at {label}\n\ntorch.profiler, top {args.rows} operators by self CPU time; checkpoint "
              f"`{shown}` (sha256 {sha}).")
    print(header + "\n", flush=True)
    text = "\n\n".join([header, *run_sections(args, code)]) + "\n"
    if args.out is not None:
        with args.out.open("a" if args.append else "w") as out:
            out.write(text if not args.append or out.tell() == 0 else "\n" + text)


if __name__ == "__main__":
    main()
