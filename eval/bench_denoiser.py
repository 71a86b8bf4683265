"""Denoiser benchmark: training-step and forward molecules/second, peak memory, and PONITA's useful GFLOP/s.

On size-bucketed batches of 64 real QM9 training molecules (the trainer's batches), for the default PONITA,
PONITA at paper scale and EDM's EGNN, each in fp32 and under bf16 autocast. A training step is forward +
EDM's l2 loss + backward + an AdamW step. Each configuration runs in its own process so that its peak
resident memory is its own. "Useful GFLOP/s" counts the matrix-product FLOPs of a training step computed
molecule by molecule (no padding) divided by the measured time of the padded batch; the bf16 matmul peak is
measured in the same run. Prints a markdown table.

Usage: python eval/bench_denoiser.py [--steps 4] [--threads 2] [--only ponita,ponita-paper,egnn]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

MODELS = ("ponita", "ponita-paper", "egnn")


def build(name: str, bf16: bool) -> torch.nn.Module:
    """The denoiser `name` with or without bf16 autocast."""
    from molgen.models.egnn import EGNN, EGNNConfig
    from molgen.models.ponita import PAPER_SCALE, Ponita, PonitaConfig
    from molgen.precision import set_precision

    models = {"ponita": lambda: Ponita(PonitaConfig()), "ponita-paper": lambda: Ponita(PAPER_SCALE),
              "egnn": lambda: EGNN(EGNNConfig())}
    model = models[name]()
    set_precision(model, "bf16" if bf16 else "fp32")
    return model


def batches(count: int):
    """`count` size-bucketed batches of 64 training molecules (fixed seed)."""
    from molgen.data.qm9 import QM9Dataset
    from molgen.data.sampler import SizeBucketBatchSampler

    train = QM9Dataset("train")
    epoch = SizeBucketBatchSampler(train.num_atoms, batch_size=64, seed=0).epoch(0)
    return [train.batch(indices) for indices in epoch[:count]]


def train_step(model, optimizer, schedule, batch, generator) -> None:
    """Forward, EDM's l2 loss, backward, AdamW step."""
    from molgen.diffusion import diffusion_loss

    loss = diffusion_loss(model, schedule, batch, generator=generator).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def useful_flops(model, schedule, batch) -> float:
    """Matrix-product FLOPs of a training step's forward and backward, molecule by molecule (no padding)."""
    from molgen.data import MoleculeBatch
    from molgen.diffusion import diffusion_loss

    total = 0.0
    for i in range(batch.num_molecules):
        a, b = int(batch.ptr[i]), int(batch.ptr[i + 1])
        one = MoleculeBatch.from_arrays(batch.x[a:b], batch.atom_type[a:b], batch.num_atoms[i : i + 1], center=False)
        with FlopCounterMode(display=False) as counter:
            diffusion_loss(model, schedule, one, generator=torch.Generator().manual_seed(i)).loss.backward()
        total += counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    return total


def measure(name: str, bf16: bool, steps: int, threads: int, queue) -> None:
    """Run in a child process: time training steps and forwards; report through `queue`."""
    from molgen.diffusion import PolynomialSchedule

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, schedule = build(name, bf16), PolynomialSchedule()
    data = batches(steps + 1)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, amsgrad=True)
    train_step(model, optimizer, schedule, data[0], generator)  # warm-up
    start = time.perf_counter()
    for batch in data[1:]:
        train_step(model, optimizer, schedule, batch, generator)
    step_seconds = (time.perf_counter() - start) / steps
    with torch.no_grad():
        start = time.perf_counter()
        for batch in data[1:]:
            model(batch.x, torch.randn(batch.x.shape[0], 6), torch.rand(batch.num_molecules), batch.layout)
        forward_seconds = (time.perf_counter() - start) / steps
    flops = useful_flops(model, schedule, data[1]) if name.startswith("ponita") else float("nan")
    queue.put({
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_mol_s": 64 / step_seconds,
        "forward_mol_s": 64 / forward_seconds,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "useful_gflop_s": flops / step_seconds / 1e9,
    })


def matmul_peak(threads: int, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a square matrix product on this machine."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="timed batches per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    args = parser.parse_args()
    peaks = {dtype: matmul_peak(args.threads, dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(f"matmul peak ({args.threads} threads): fp32 {peaks[torch.float32]:.0f} GFLOP/s, "
          f"bf16 {peaks[torch.bfloat16]:.0f} GFLOP/s")
    print("| denoiser | precision | parameters | train mol/s | forward mol/s | peak RSS GiB | useful GFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|---|---|")
    context = mp.get_context("spawn")
    for name in args.only.split(","):
        for bf16 in (False, True):
            queue = context.Queue()
            process = context.Process(target=measure, args=(name, bf16, args.steps, args.threads, queue))
            process.start()
            r = queue.get()
            process.join()
            peak = peaks[torch.bfloat16 if bf16 else torch.float32]
            share = "-" if r["useful_gflop_s"] != r["useful_gflop_s"] else f"{100 * r['useful_gflop_s'] / peak:.0f}%"
            gflops = "-" if share == "-" else f"{r['useful_gflop_s']:.0f}"
            print(f"| {name} | {'bf16' if bf16 else 'fp32'} | {r['parameters']:,} | {r['train_mol_s']:.1f} | "
                  f"{r['forward_mol_s']:.1f} | {r['peak_gib']:.2f} | {gflops} | {share} |", flush=True)


if __name__ == "__main__":
    main()
