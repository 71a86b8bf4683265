"""Radial features in PONITA's spatial basis (model.config.radial_features): what bf16 rounding does to them, and
what they cost per training step.

Rounding: the spatial basis's first layer reads the monomials of the pair invariants (a, b) and, with radial
features, K features each of d, a and b. Under bf16 autocast its product rounds them to 8 significant bits. For
pairs of real QM9 molecules (i ≠ j, every orientation of the shipped 8-point grid) this measures the distance
resolution of each input vector v: ‖bf16(v) − v‖ / ‖∂v/∂d‖, the stretch of the pair (d changes, its direction
does not) that moves v as far as the rounding does. Below it two distances look alike to the network's first layer.

Speed: training steps (batches of 64 QM9 training molecules, EDM's l2 loss, backward, AdamW) of the test fixture's
PONITA with K = 0 and with K radial features per variable, timed in CPU seconds of this process (user + sys, as
the study's budget counts; on one thread this is the work done, not the wait for a core of a loaded machine),
interleaved in one process so that what load remains (shared caches) hits all rows alike; the ratio is taken per
round and its median reported.

    python eval/radial_basis.py --features 16 --threads 1 --rounds 3 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from molgen.checkpoint import load_model
from molgen.data.qm9 import QM9Dataset
from molgen.data.sampler import SizeBucketBatchSampler
from molgen.diffusion import diffusion_loss
from molgen.geometry.invariants import pair_invariants
from molgen.models.grow import PonitaGrowth, Radial
from molgen.models.ponita import Ponita
from molgen.nn.basis import monomials
from molgen.nn.radial import RadialFeatures
from molgen.precision import cpu_kind, set_precision

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
PAIR_MONOMIALS = [(1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3)]  # of (a, b), degree 3


def qm9_pairs(molecules: int, grid: torch.Tensor) -> torch.Tensor:
    """(a, b) of every ordered pair i ≠ j and orientation of the first `molecules` training molecules, float64.
    Shapes: grid [O, 3] -> [P, 2]."""
    dataset = QM9Dataset("train")
    pairs = []
    for index in range(molecules):
        x = dataset.batch([index]).x.double().unsqueeze(0)  # [1, N, 3]
        invariants = pair_invariants(x, grid.double())[0]  # [O, N, N, 2]
        off_diagonal = ~torch.eye(x.shape[1], dtype=torch.bool)  # [N, N]
        pairs.append(invariants[:, off_diagonal].reshape(-1, 2))  # [O·N(N-1), 2]
    return torch.cat(pairs)  # [P, 2]


def resolution(inputs, pairs: torch.Tensor, step: float = 1e-5) -> torch.Tensor:
    """‖bf16(v) − v‖ / ‖∂v/∂d‖ per pair for v = inputs(pair) computed in fp32 (as the model does), in Å.
    Shapes: pairs [P, 2] -> [P]."""
    v = inputs(pairs.float())  # [P, F]
    rounding = (v.bfloat16().float() - v).double().norm(dim=-1)  # [P]
    direction = pairs / pairs.norm(dim=-1, keepdim=True)  # [P, 2]: a stretch of the pair
    slope = (inputs(pairs + step * direction) - inputs(pairs - step * direction)) / (2 * step)  # [P, F]
    return rounding / slope.norm(dim=-1)  # [P]


def rounding_table(features: int, cutoff: float, molecules: int) -> str:
    pairs = qm9_pairs(molecules, load_model(FIXTURE).model.grid)
    d = pairs.norm(dim=-1)  # [P]
    polynomial = lambda p: monomials(p, PAIR_MONOMIALS)  # noqa: E731
    lines = [f"bf16 distance resolution of the spatial basis's first-layer inputs: {len(pairs):,} pairs (i ≠ j, 8 "
             f"orientations) of {molecules} QM9 training molecules, K = {features}, cutoff {cutoff:g} Å; Å",
             "", "| inputs | all pairs: median | 90th percentile | pairs with d < 2 Å: median | 90th percentile |",
             "|---|---|---|---|---|"]
    rows = {"(a, b) alone, bf16": lambda p: p, "9 monomials of (a, b) (today)": polynomial}
    for basis in ("bessel", "gaussian"):
        rows[f"{3 * features} {basis} features"] = RadialFeatures(features, basis, cutoff)
    for name, inputs in rows.items():
        r = resolution(inputs, pairs)
        near = r[d < 2.0]
        lines.append(f"| {name} | {r.median():.5f} | {r.quantile(0.9):.5f} | {near.median():.5f} | "
                     f"{near.quantile(0.9):.5f} |")
    return "\n".join(lines)


def with_radial(model: Ponita, radial: Radial | None) -> Ponita:
    """The model with `radial` features added (random columns: the cost does not depend on their values)."""
    if radial is None:
        return model
    growth = PonitaGrowth.plan(model.config, model.state_dict(), model.config.layers, model.config.hidden,
                               radial=radial)
    grown = Ponita(growth.new)
    grown.load_state_dict(growth.apply(model.state_dict()))
    torch.nn.init.normal_(grown.spatial_basis.radial_linear.weight, std=0.01)
    return grown


def timed_steps(model: Ponita, schedule, batches, precision: str) -> float:
    """Molecules per CPU second over `batches` (one untimed warm-up step first)."""
    set_precision(model, precision)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, amsgrad=True)
    generator = torch.Generator().manual_seed(0)

    def step(batch) -> None:
        loss = diffusion_loss(model, schedule, batch, generator=generator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])
    start = time.process_time()
    for batch in batches[1:]:
        step(batch)
    return sum(batch.num_molecules for batch in batches[1:]) / (time.process_time() - start)


def speed_table(features: int, cutoff: float, rounds: int, steps: int, threads: int) -> str:
    torch.set_num_threads(threads)
    loaded = load_model(FIXTURE)
    dataset = QM9Dataset("train")
    epoch = SizeBucketBatchSampler(dataset.num_atoms, batch_size=64, seed=0).epoch(0)
    batches = [dataset.batch(indices) for indices in epoch[: steps + 1]]
    variants = {"K = 0": None, **{f"K = {features} {basis}": Radial(features, basis, cutoff)
                                  for basis in ("bessel", "gaussian")}}
    speeds = {(name, precision): [] for name in variants for precision in ("fp32", "bf16")}
    for _ in range(rounds):
        for (name, precision), measured in speeds.items():
            model = with_radial(load_model(FIXTURE).model, variants[name])
            measured.append(timed_steps(model, loaded.schedule, batches, precision))
    lines = [f"training step: batch 64, {steps} timed steps x {rounds} interleaved rounds, {threads} thread(s), "
             f"{cpu_kind()} CPU, under load", "", "| radial features | precision | molecules per CPU-second (median) | "
             "speed relative to K = 0: median over rounds (range) |", "|---|---|---|---|"]
    for (name, precision), measured in speeds.items():
        ratios = [a / b for a, b in zip(measured, speeds[("K = 0", precision)])]
        lines.append(f"| {name} | {precision} | {statistics.median(measured):.1f} | {statistics.median(ratios):.3f} "
                     f"({min(ratios):.3f}–{max(ratios):.3f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=16, help="K radial features per variable")
    parser.add_argument("--cutoff", type=float, default=5.0, help="the radial cutoff in Å")
    parser.add_argument("--molecules", type=int, default=100, help="QM9 molecules for the rounding")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the timing")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true", help="only the rounding")
    args = parser.parse_args()
    print(rounding_table(args.features, args.cutoff, args.molecules), "\n", flush=True)
    if not args.skip_speed:
        print(speed_table(args.features, args.cutoff, args.rounds, args.steps, args.threads))


if __name__ == "__main__":
    main()
