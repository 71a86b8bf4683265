"""Choose PONITA's default CPU configuration by the diffusion loss it reaches on QM9 in a fixed time budget.

Each candidate trains from the same seed for `--minutes` of CPU time of its own process on one thread (so
candidates can run side by side, one per core, and the budget is immune to other load), with bf16 autocast,
AdamW (lr 1e-3 after a 100-step warm-up), size-bucketed batches of 64 training molecules and EDM's l2 loss,
then is scored by the l2 loss on the first 2,000 validation molecules with fixed t and noise (the same draws
for every candidate). With --ema-decays, EMAs of the weights at those decays (molgen.train.ema, as the trainer
keeps them) are tracked along and scored the same way. Prints a markdown table.

Usage: python eval/select_ponita_config.py [--minutes 12] [--candidates o8-c64-l5-g8,...] [--lr 1e-3]
       [--batch-size 64] [--ema-decays 0.99,0.999] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from molgen.data.qm9 import load_splits
from molgen.data.sampler import SizeBucketBatchSampler
from molgen.diffusion import PolynomialSchedule, diffusion_loss
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.precision import set_precision
from molgen.train.ema import EMA

CANDIDATES = {
    f"o{o}-c{c}-l{l}-g{g}": PonitaConfig(orientations=o, hidden=c, layers=l, channels_per_kernel=g)
    for o, c, l, g in [(8, 64, 5, 8), (12, 64, 5, 8), (8, 96, 5, 8), (8, 64, 7, 8), (12, 64, 5, 1), (8, 64, 5, 2)]
}


def validation_loss(model: Ponita, schedule: PolynomialSchedule, valid, size: int = 2000) -> float:
    """Mean l2 loss on the first `size` validation molecules with fixed t and noise (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, size, 100):
            batch = valid.batch(range(start, min(start + 100, size)))
            loss = diffusion_loss(model, schedule, batch, generator=generator)
            total += float(loss.per_molecule.sum())
            count += batch.num_molecules
    model.train()
    return total / count


def train_for(config: PonitaConfig, minutes: float, splits, lr: float, batch_size: int = 64,
              ema_decays: tuple[float, ...] = (), seed: int = 0) -> dict:
    """Train one candidate for a CPU-time budget; returns steps, molecules/s and the validation losses."""
    torch.manual_seed(seed)
    model = Ponita(config)
    set_precision(model, "bf16")
    schedule = PolynomialSchedule()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, amsgrad=True, weight_decay=1e-12)
    averages = [EMA(model, decay) for decay in ema_decays]
    sampler = SizeBucketBatchSampler(splits["train"].num_atoms, batch_size=batch_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    steps, start, deadline = 0, time.process_time(), time.process_time() + 60 * minutes
    epoch = 0
    while time.process_time() < deadline:
        for indices in sampler.epoch(epoch):
            loss = diffusion_loss(model, schedule, splits["train"].batch(indices), generator=generator).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (steps + 1) / 100)
            optimizer.step()
            for average in averages:
                average.update(model)
            steps += 1
            if time.process_time() >= deadline:
                break
        epoch += 1
    seconds = time.process_time() - start
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "molecules_per_cpu_s": batch_size * steps / seconds,
        "valid_loss": validation_loss(model, schedule, splits["valid"]),
        "ema_valid_loss": {a.decay: validation_loss(a.module, schedule, splits["valid"]) for a in averages},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0, help="CPU minutes of training per candidate")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ema-decays", default="", help="comma-separated EMA decays to score as well")
    parser.add_argument("--threads", type=int, default=1, help="keep 1: the budget is CPU time")
    parser.add_argument("--out", type=Path, default=None, help="also append the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_splits()
    decays = tuple(float(d) for d in args.ema_decays.split(",") if d)
    ema_columns = "".join(f" EMA {d:g} |" for d in decays)
    header = ("| candidate | O | C | layers | g | batch | parameters | steps | molecules/CPU-s | valid l2 loss |"
              + ema_columns + "\n|" + "---|" * (10 + len(decays)))
    print(header, flush=True)
    rows = []
    for name in args.candidates.split(","):
        c = CANDIDATES[name]
        r = train_for(c, args.minutes, splits, args.lr, args.batch_size, decays)
        row = (f"| {name} | {c.orientations} | {c.hidden} | {c.layers} | {c.channels_per_kernel} | {args.batch_size} | "
               f"{r['parameters']:,} | {r['steps']} | {r['molecules_per_cpu_s']:.0f} | {r['valid_loss']:.4f} |"
               + "".join(f" {r['ema_valid_loss'][d]:.4f} |" for d in decays))
        print(row, flush=True)
        rows.append(row)
    if args.out is not None:
        with open(args.out, "a") as handle:
            title = f"{args.minutes:g} minutes per candidate, lr {args.lr:g}, batch {args.batch_size}"
            handle.write("\n".join([title, header, *rows]) + "\n")


if __name__ == "__main__":
    main()
