"""Speed candidates of the bf16 path, measured against today's code: LayerNorm's fp32 round trip (adopted away),
a bf16 residual stream and bf16 weights held for a run (not adopted).

Usage:
    python eval/speed_candidates.py [--threads 1] [--rounds 3] [--steps 8] [--sizes 1,10,30,100]

Each candidate is a variant of the shipped model's PONITA (the test-fixture checkpoint) built here, not shipped:
- "today": the shipped code, whose ConvNeXt blocks run LayerNorm on the conv's bf16 output (fp32 statistics,
  outside autocast);
- "fp32 LayerNorm round trip": the code before (autocast's LayerNorm: bf16 -> fp32, normalised, rounded back to
  bf16 by the next Linear), the candidate adopted in ffacfa5 measured against;
- "bf16 residual stream": the residual stream in bf16 also where padding (an fp32 atom mask) made it fp32; without
  padding (training's buckets) it is bf16 already, as the embedding and the MLP return bf16 under autocast;
- "bf16 weights once": the Linear layers' weights and the conv biases held in bf16 for the whole run, so that
  autocast casts no weight at any call.
Variants run interleaved in one process, `--rounds` times, and each cell is the smallest CPU time (user + sys of
this process, all threads) over the rounds: the training step (batch 64, forward, EDM's l2 loss, backward, AdamW;
molecules per CPU-second) and one inference call of the network at each batch size (ms per call), with the largest
relative difference of the outputs from today's. CPU time rather than wall time keeps the comparison
fair on a shared machine. The table header names the CPU kind, threads and precision (bf16 autocast throughout).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from code_versions import parse_sizes  # noqa: E402
from profile_step import training_steps  # noqa: E402

from molgen.batch import MoleculeLayout  # noqa: E402
from molgen.checkpoint import load_model  # noqa: E402
from molgen.nn.conv import ConvNeXtBlock  # noqa: E402
from molgen.precision import describe_compute, set_precision  # noqa: E402
from molgen.threads import configure_threads  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qm9_ponita_860b5b7.pt"
TRAINED = ("today", "fp32 LayerNorm round trip", "bf16 residual stream")  # bf16-held weights are an inference variant (AdamW keeps fp32 weights)


class AutocastNormBlock(nn.Module):
    """A ConvNeXt block as before ffacfa5: LayerNorm through autocast, i.e. the conv's bf16 output cast to fp32,
    normalised in fp32, and rounded back to bf16 by the next Linear."""

    def __init__(self, block: ConvNeXtBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, f: Tensor, spatial_kernel: Tensor, spherical_basis: Tensor) -> Tensor:
        x = self.block.conv(f, spatial_kernel, spherical_basis)  # [B, O, N, C] bf16
        return f + self.block.mlp(self.block.norm(x))  # [B, O, N, C]


class Bf16ResidualBlock(nn.Module):
    """Today's ConvNeXt block taking and returning the residual stream in bf16 also where padding (an fp32 atom
    mask) made it fp32."""

    def __init__(self, block: ConvNeXtBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, f: Tensor, spatial_kernel: Tensor, spherical_basis: Tensor) -> Tensor:
        return self.block(f.to(torch.bfloat16), spatial_kernel, spherical_basis)  # [B, O, N, C] bf16


def with_blocks(model: nn.Module, wrapper: type[nn.Module]) -> nn.Module:
    """A copy of `model` whose ConvNeXt blocks are wrapped by `wrapper`."""
    variant = copy.deepcopy(model)
    variant.blocks = nn.ModuleList(wrapper(block) for block in variant.blocks)
    return variant


def bf16_weights(model: nn.Module) -> nn.Module:
    """A copy of `model` whose Linear layers and conv biases are held in bf16 (cast once, not at every call)."""
    variant = copy.deepcopy(model)
    for module in variant.modules():
        if isinstance(module, nn.Linear):
            module.to(torch.bfloat16)
    for block in variant.blocks:
        block.conv.bias.data = block.conv.bias.data.to(torch.bfloat16)
    return variant


def cpu_seconds(run: Callable[[], object]) -> float:
    """CPU seconds (user + sys, all threads of this process) of one call of `run`."""
    start = time.process_time()
    run()
    return time.process_time() - start


def inference_inputs(loaded, size: int) -> tuple:
    """Noisy inputs of `size` molecules with counts from the training histogram (seed 0)."""
    counts = loaded.node_distribution.sample(size, torch.Generator().manual_seed(0))  # [B]
    generator = torch.Generator().manual_seed(1)
    atoms = int(counts.sum())
    return (torch.randn(atoms, 3, generator=generator), torch.randn(atoms, 6, generator=generator),
            torch.rand(size, generator=generator), MoleculeLayout.from_num_atoms(counts))


def largest_difference(output: tuple[Tensor, Tensor], reference: tuple[Tensor, Tensor]) -> float:
    """max over eps_x, eps_h of max|output - reference| / max|reference|."""
    return max(float((o - r).abs().max() / r.abs().max()) for o, r in zip(output, reference))


def measure(variants: dict[str, nn.Module], loaded, sizes: list[int], steps: int, rounds: int) -> dict:
    """Smallest CPU time over `rounds` (after one unrecorded warm-up round) of each variant's training steps and
    inference calls, and the outputs' differences from today's."""
    best: dict[tuple[str, object], float] = {}
    differences: dict[tuple[str, int], float] = {}

    def record(key: tuple[str, object], seconds: float, warm_up: bool) -> None:
        if not warm_up:
            best[key] = min(best.get(key, float("inf")), seconds)

    for number in range(rounds + 1):
        for name, model in variants.items():
            if name in TRAINED:
                run = training_steps(copy.deepcopy(model), loaded.schedule, steps)
                record((name, "train"), cpu_seconds(run) / (steps * 64), number == 0)
            with torch.inference_mode():
                for size in sizes:
                    inputs = inference_inputs(loaded, size)
                    record((name, size), cpu_seconds(lambda: model.eval()(*inputs)), number == 0)
                    differences[(name, size)] = largest_difference(model(*inputs), variants["today"](*inputs))
    return {"best": best, "differences": differences}


def table(result: dict, variants: list[str], sizes: list[int]) -> str:
    """Markdown: per variant, training molecules per CPU-second and ms per inference call (speed-up, difference)."""
    best, differences = result["best"], result["differences"]
    header = "| variant | training mol per CPU-s | " + " | ".join(f"B = {s}: CPU ms per call" for s in sizes) + " |"
    lines = [header, "|" + "---|" * (2 + len(sizes))]
    for name in variants:
        cells = ["-"]
        if name in TRAINED:
            speed = 1.0 / best[(name, "train")]
            cells = [f"{speed:.0f} ({best[('today', 'train')] / best[(name, 'train')]:.2f}x)"]
        for size in sizes:
            ratio = best[("today", size)] / best[(name, size)]
            cells.append(f"{1e3 * best[(name, size)]:.1f} ({ratio:.2f}x, diff {differences[(name, size)]:.1e})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="training steps per round")
    parser.add_argument("--sizes", type=parse_sizes, default=[1, 10, 30, 100], help="inference batch sizes")
    args = parser.parse_args()
    configure_threads(args.threads)
    loaded = load_model(args.checkpoint)
    set_precision(loaded.model, "bf16")
    variants = {"today": loaded.model, "fp32 LayerNorm round trip": with_blocks(loaded.model, AutocastNormBlock),
                "bf16 residual stream": with_blocks(loaded.model, Bf16ResidualBlock),
                "bf16 weights once": bf16_weights(loaded.model)}
    result = measure(variants, loaded, args.sizes, args.steps, args.rounds)
    print(f"Compute: {describe_compute(torch.device('cpu'), 'bf16')}; checkpoint {args.checkpoint.name}; "
          f"best of {args.rounds} rounds after a warm-up round, CPU time.\n")
    print(table(result, list(variants), args.sizes))


if __name__ == "__main__":
    main()
