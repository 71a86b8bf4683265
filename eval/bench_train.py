"""Trainer overhead benchmark: end-to-end trainer molecules/s against the bare denoiser training step.

The trainer's step (`Trainer.train_step`) gathers the batch from the data set, draws each molecule's t and noise
from its own seeded generator, computes EDM's loss, backpropagates, checks for non-finite values, applies EDM's
adaptive clipping, steps AdamW (amsgrad) and updates the EMA. The bare step is what eval/bench_denoiser.py
times: EDM's loss with one generator + backward + AdamW, on a batch gathered beforehand. Both run on the same
size-bucketed 64-molecule training batches, interleaved (alternating which goes first) so that load from other
processes hits both alike; the table gives the median over the timed steps.

Usage: python eval/bench_train.py [--config configs/qm9_ponita_cpu.yaml] [--steps 10] [--warmup 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="configs/qm9_ponita_cpu.yaml")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each kind")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from molgen.config import load_config
    from molgen.data.qm9 import load_splits
    from molgen.data.stats import node_count_histogram
    from molgen.diffusion import diffusion_loss
    from molgen.train.loop import Trainer

    torch.set_num_threads(args.threads)
    config = load_config(args.config, {"train.threads": args.threads, "train.device": args.device,
                                       "run_dir": "/tmp/molgen-bench-train"})
    splits = load_splits(config.data.cache_dir)
    trainer = Trainer(config, splits["train"], node_histogram=node_count_histogram(splits["train"]))
    device = trainer.device
    bare_model = config.model.build().to(device).train()
    tc = config.train
    bare_optimizer = torch.optim.AdamW(bare_model.parameters(), lr=tc.lr, betas=tc.betas,
                                       weight_decay=tc.weight_decay, amsgrad=tc.amsgrad)
    generator = torch.Generator(device).manual_seed(0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare_step(batch) -> float:
        sync()
        start = time.perf_counter()
        loss = diffusion_loss(bare_model, trainer.schedule, batch, generator=generator,
                              normalization=config.diffusion.normalization).loss
        bare_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        bare_optimizer.step()
        sync()
        return time.perf_counter() - start

    def trainer_step() -> float:
        sync()
        start = time.perf_counter()
        trainer.train_step()
        sync()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"trainer": [], "bare": []}
    molecules = []
    for i in range(args.warmup + args.steps):
        indices, _ = trainer.next_indices()
        batch = splits["train"].batch(indices).to(device)
        order = ("trainer", "bare") if i % 2 == 0 else ("bare", "trainer")
        for kind in order:
            seconds = trainer_step() if kind == "trainer" else bare_step(batch)
            if i >= args.warmup:
                times[kind].append(seconds)
        if i >= args.warmup:
            molecules.append(batch.num_molecules)
    size = statistics.mean(molecules)
    parameters = sum(p.numel() for p in bare_model.parameters())
    print(f"{args.config}: {config.model.name}, {parameters:,} parameters, batch {config.data.batch_size}, "
          f"{args.threads} thread(s), {device}, {args.steps} timed steps of each kind")
    print("| step | median s/step | mol/s (median) | mol/s (mean) |")
    print("|---|---|---|---|")
    for kind in ("bare", "trainer"):
        median, mean = statistics.median(times[kind]), statistics.mean(times[kind])
        print(f"| {kind} | {median:.3f} | {size / median:.1f} | {size / mean:.1f} |")
    ratio = statistics.median(times["bare"]) / statistics.median(times["trainer"])
    pairwise = statistics.median(b / t for b, t in zip(times["bare"], times["trainer"]))
    print(f"trainer / bare throughput: {ratio:.3f} (median of per-batch ratios {pairwise:.3f})")


if __name__ == "__main__":
    main()
