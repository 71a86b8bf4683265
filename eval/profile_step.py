"""Profile one training step and one sampling step of the shipped config: top operators by self CPU time.

Usage:
    python eval/profile_step.py --checkpoint tests/fixtures/qm9_ponita_860b5b7.pt --out eval/profile_step.md

Training step: a size-bucketed batch of 64 QM9 training molecules, EDM's l2 loss, backward, AdamW (3 steps
profiled after 2 warm-up steps). Sampling step: one strided ancestral step (one network call) on a batch of 100
molecules with atom counts from the training histogram, under inference mode (10 profiled after 2 warm-up).
The table header names the CPU kind, threads and precision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from molgen.checkpoint import load_model
from molgen.data.qm9 import QM9Dataset
from molgen.data.sampler import SizeBucketBatchSampler
from molgen.diffusion import diffusion_loss, sample
from molgen.precision import describe_compute, resolve_precision, set_precision
from molgen.threads import configure_threads


def training_steps(model, schedule, count: int):
    """A closure running `count` training steps on fixed batches of 64 training molecules."""
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


def sampling_steps(loaded, count: int, molecules: int = 100):
    """A closure running `count` single-step ancestral samplings of `molecules` molecules (one network call each
    plus the final t = 0 call: half the calls are the strided step, half the final one)."""
    generator = torch.Generator().manual_seed(0)
    counts = loaded.node_distribution.sample(molecules, generator)  # [B]
    loaded.model.eval()

    def run() -> None:
        with torch.inference_mode():
            for _ in range(count):
                sample(loaded.model, loaded.schedule, counts, sampler="ancestral", steps=1, generator=generator)

    return run


def top_ops(run, warmup, rows: int) -> str:
    """The profiler's table of the top operators by self CPU time, as markdown."""
    warmup()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = ["| operator | calls | self CPU ms | % of total |", "|---|---|---|---|"]
    for event in events[:rows]:
        lines.append(f"| `{event.key}` | {event.count} | {event.self_cpu_time_total / 1e3:.1f} | "
                     f"{100 * event.self_cpu_time_total / total:.1f} |")
    lines.append(f"| total | | {total / 1e3:.1f} | 100 |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("tests/fixtures/qm9_ponita_860b5b7.pt"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args()
    configure_threads(args.threads)
    loaded = load_model(args.checkpoint)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    set_precision(loaded.model, precision)
    header = f"Compute: {describe_compute(torch.device('cpu'), precision)}; checkpoint {args.checkpoint}."
    train = top_ops(training_steps(loaded.model, loaded.schedule, 3), training_steps(loaded.model,
                    loaded.schedule, 2), args.rows)
    sampling = top_ops(sampling_steps(loaded, 5), sampling_steps(loaded, 1), args.rows)
    text = (f"{header}\n\n### One training step x 3 (batch 64, forward + backward + AdamW)\n\n{train}\n\n"
            f"### Sampling: 5 x (one ancestral step + the final call), batch 100\n\n{sampling}\n")
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
