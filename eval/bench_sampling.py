"""Benchmark the samplers: network evaluations (NFE) and molecules per second for each sampler and step count.

Usage:
    python eval/bench_sampling.py                        # stand-in denoiser, ~6 s on one CPU thread
    python eval/bench_sampling.py --num-molecules 500 --width 256 --configs ancestral:1000,heun:20

Without a trained model the denoiser is a small random MLP on each atom's state (positions, features, t) with the
centroid removed from eps_x: it measures the samplers' own overhead plus a cheap network, not a real model's
cost. `run_benchmark` takes any denoiser (e.g. a trained EGNN / PONITA model) for the real numbers. Atom counts
come from a synthetic QM9-like histogram (3-29 atoms, mean 18, no 28).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from molgen.data.batch import MoleculeLayout
from molgen.diffusion import NodeCountDistribution, NoiseSchedule, PolynomialSchedule, sample
from molgen.geometry.centroid import remove_centroid

DEFAULT_CONFIGS = "ancestral:1000,ancestral:100,ancestral:50,heun:5,heun:10,heun:20,heun:50"


class StandInDenoiser(nn.Module):
    """A random per-atom MLP on [z_x, z_h, t] -> [eps_x, eps_h], eps_x with zero centroid per molecule."""

    def __init__(self, width: int = 64, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(10, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 9))

    def forward(self, z_x: Tensor, z_h: Tensor, t: Tensor, layout: MoleculeLayout) -> tuple[Tensor, Tensor]:
        inputs = torch.cat([z_x, z_h, t[layout.batch].unsqueeze(1)], dim=1)  # [M, 10]
        out = 0.1 * self.net(inputs)  # [M, 9]
        eps_x = remove_centroid(out[:, :3], layout.batch, layout.num_molecules)  # [M, 3]
        return eps_x, out[:, 3:]


def qm9_like_histogram() -> Tensor:
    """Synthetic atom-count histogram [30]: a Gaussian bump (mean 18, sd 3) on 3..29 without 28, like QM9's."""
    counts = torch.exp(-0.5 * ((torch.arange(30, dtype=torch.float64) - 18) / 3) ** 2)  # [30]
    counts[:3] = 0
    counts[28] = 0
    return counts


@dataclass(frozen=True)
class BenchRow:
    """One sampler configuration's result."""

    sampler: str
    steps: int
    nfe: int
    seconds: float
    molecules_per_second: float


def network_evaluations(sampler: str, steps: int) -> int:
    """NFE: ancestral steps + 1 final call; Heun 2 per step + 1 final call."""
    return steps + 1 if sampler == "ancestral" else 2 * steps + 1


def run_benchmark(
    denoiser: nn.Module,
    schedule: NoiseSchedule,
    node_distribution: NodeCountDistribution,
    configs: list[tuple[str, int]],
    num_molecules: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[BenchRow]:
    """Time `sample` for each (sampler, steps) on the same atom counts; one untimed warm-up call first."""
    rows = []
    with torch.inference_mode():
        sample(denoiser, schedule, node_distribution=node_distribution, num_molecules=2, sampler="heun", steps=2,
               generator=torch.Generator(device).manual_seed(seed), device=device)
        for sampler, steps in configs:
            generator = torch.Generator(device).manual_seed(seed)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            sample(denoiser, schedule, node_distribution=node_distribution, num_molecules=num_molecules,
                   sampler=sampler, steps=steps, generator=generator, device=device)  # type: ignore[arg-type]
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            rows.append(BenchRow(sampler, steps, network_evaluations(sampler, steps), seconds, num_molecules / seconds))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """A Markdown table of the rows."""
    lines = ["| sampler | steps | NFE | seconds | molecules/s |", "|---|---|---|---|---|"]
    lines += [f"| {r.sampler} | {r.steps} | {r.nfe} | {r.seconds:.2f} | {r.molecules_per_second:.1f} |" for r in rows]
    return "\n".join(lines)


def _parse_configs(text: str) -> list[tuple[str, int]]:
    """'ancestral:1000,heun:10' -> [('ancestral', 1000), ('heun', 10)]."""
    configs = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if name not in ("ancestral", "heun") or not steps.isdigit():
            raise argparse.ArgumentTypeError(f"bad config {item!r}: use ancestral:STEPS or heun:STEPS")
        configs.append((name, int(steps)))
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--configs", type=_parse_configs, default=DEFAULT_CONFIGS, help="sampler:steps list")
    parser.add_argument("--num-molecules", type=int, default=100, help="molecules per sampler run (one batch)")
    parser.add_argument("--width", type=int, default=64, help="hidden width of the stand-in MLP")
    parser.add_argument("--timesteps", type=int, default=1000, help="T of the polynomial_2 schedule")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; the stand-in's tiny ops run slower on 2 threads of a busy 2-core machine")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = args.configs if isinstance(args.configs, list) else _parse_configs(args.configs)
    schedule = PolynomialSchedule(args.timesteps).to(args.device)
    histogram = NodeCountDistribution(qm9_like_histogram()).to(args.device)
    denoiser = StandInDenoiser(args.width).to(args.device).eval()
    rows = run_benchmark(denoiser, schedule, histogram, configs, args.num_molecules, args.seed, args.device)
    mean_atoms = float((histogram.probabilities * torch.arange(30, device=args.device)).sum())
    print(f"stand-in MLP width {args.width}, {args.num_molecules} molecules per run (~{mean_atoms:.0f} atoms each), "
          f"T={args.timesteps}, device {args.device}, {torch.get_num_threads()} threads")
    print(format_table(rows))
    if not all(math.isfinite(r.seconds) for r in rows):
        raise SystemExit("a timing was not finite")


if __name__ == "__main__":
    main()
