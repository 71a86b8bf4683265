"""The random-rotation check of the shipped model's recipe: two training branches from the same checkpoint with
identical batches and noise, one with `data.random_rotation: true`, compared by paired validation NLL.

Runs both branches (unless --skip-training), each `--steps` steps at the main branch's constant learning rate in
its own run folder and its own process (one thread each, side by side), then evaluates each branch's primary EMA
on the first `--molecules` validation molecules twice: in QM9's own frames, and with every molecule turned by a
fixed random rotation (seed 0). The same noise seed is used for both branches, so the per-molecule differences are
paired; the table gives each NLL, the mean paired difference (rotation branch - plain branch) and its standard
error. `eval/branches.py` generalises this to any named branches under a CPU-time budget, with cooldowns and
sample scores; this script stays for the comparison in turned frames that eval/random_rotation.md records.

    python eval/rotation_branches.py --resume runs/qm9_ponita_cpu/last.pt --steps 3000 --out eval/random_rotation.md
    python eval/rotation_branches.py --extend --steps 3000   # both branches 3000 steps further, still paired
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from molgen.batch import size_batches
from molgen.checkpoint import load_model
from molgen.data.qm9 import QM9Dataset
from molgen.diffusion.likelihood import nll_per_molecule
from molgen.geometry.rotations import random_rotations

BRANCHES = {"plain": "false", "random rotation": "true"}


def branch_folder(folder: Path, name: str) -> Path:
    """The run folder of one branch."""
    return folder / name.replace(" ", "_")


def start_branches(folder: Path, resume: Path) -> dict[str, Path]:
    """Both branches start at a copy of `resume` (the main branch may overwrite it meanwhile)."""
    folder.mkdir(parents=True, exist_ok=True)
    start_file = folder / "start.pt"
    shutil.copyfile(resume, start_file)
    return {name: start_file for name in BRANCHES}


def extended_branches(folder: Path) -> dict[str, Path]:
    """Each branch continues from its own last.pt; both must stand at the same step to stay paired."""
    starts = {name: branch_folder(folder, name) / "last.pt" for name in BRANCHES}
    steps = {int(torch.load(path, map_location="cpu", weights_only=True)["step"]) for path in starts.values()}
    if len(steps) != 1:
        raise SystemExit(f"the branches in {folder} stand at different steps {sorted(steps)}; cannot extend them")
    return starts


def run_branches(config: Path, starts: dict[str, Path], steps: int, folder: Path) -> dict[str, Path]:
    """Train both branches side by side (one thread each) `steps` steps past their starts; their last.pt files."""
    processes, results = [], {}
    for name, flag in BRANCHES.items():
        start = int(torch.load(starts[name], map_location="cpu", weights_only=True)["step"])
        run_dir = branch_folder(folder, name)
        command = [sys.executable, "-m", "molgen", "train", str(config), "--resume", str(starts[name]), "--run-dir",
                   str(run_dir), "--no-progress", "--max-steps", str(start + steps), "--set",
                   f"data.random_rotation={flag}", "--set", "train.threads=1", "--set", "train.sample_every=0",
                   "--set", "train.eval_every=0"]
        processes.append(subprocess.Popen(command))
        results[name] = run_dir / "last.pt"
    if any(process.wait() != 0 for process in processes):
        raise SystemExit("a branch failed")
    return results


def rotated(batch, generator: torch.Generator):
    """The batch with each molecule turned by its own random rotation."""
    rotation = random_rotations(batch.num_molecules, generator, batch.x.dtype, "cpu")  # [B, 3, 3]
    return batch.with_positions(torch.einsum("mij,mj->mi", rotation[batch.batch], batch.x))  # [M, 3]


def paired_nll(checkpoints: dict[str, Path], molecules: int, batch_size: int) -> dict[str, dict[str, torch.Tensor]]:
    """Per-molecule validation NLL of each checkpoint's primary EMA in the original and in rotated frames."""
    valid = QM9Dataset("valid")
    original = [valid.batch(chunk) for chunk in size_batches(valid.num_atoms[:molecules], batch_size)]
    generator = torch.Generator().manual_seed(0)
    frames = {"original frames": original, "rotated frames": [rotated(b, generator) for b in original]}
    results = {}
    for name, path in checkpoints.items():
        loaded = load_model(path)
        with torch.inference_mode():
            results[name] = {frame: nll_per_molecule(loaded.model, loaded.schedule, batches, loaded.node_distribution,
                                                     1, 0, False, None) for frame, batches in frames.items()}
    return results


def table(results: dict[str, dict[str, torch.Tensor]]) -> str:
    """Markdown: NLL ± standard error per branch and frame, and the paired difference."""
    plain, turned = results["plain"], results["random rotation"]
    lines = ["| frames | plain branch | random-rotation branch | paired difference (rotation - plain) |",
             "|---|---|---|---|"]
    for frame in plain:
        a, b = plain[frame], turned[frame]
        se = lambda x: float(x.std(unbiased=True) / len(x) ** 0.5)  # noqa: E731
        lines.append(f"| {frame} | {float(a.mean()):.2f} ± {se(a):.2f} | {float(b.mean()):.2f} ± {se(b):.2f} | "
                     f"{float((b - a).mean()):+.2f} ± {se(b - a):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/qm9_ponita_cpu.yaml"))
    parser.add_argument("--resume", type=Path, help="the main-branch checkpoint both branches start at")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--folder", type=Path, default=Path("runs/rotation_branches"))
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--skip-training", action="store_true", help="evaluate the branches already in --folder")
    parser.add_argument("--extend", action="store_true", help="continue the branches in --folder by --steps")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if args.skip_training:
        checkpoints = {name: branch_folder(args.folder, name) / "last.pt" for name in BRANCHES}
    else:
        if args.resume is None and not args.extend:
            parser.error("give --resume (new branches), --extend or --skip-training")
        starts = extended_branches(args.folder) if args.extend else start_branches(args.folder, args.resume)
        checkpoints = run_branches(args.config, starts, args.steps, args.folder)
    text = table(paired_nll(checkpoints, args.molecules, args.batch_size))
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
