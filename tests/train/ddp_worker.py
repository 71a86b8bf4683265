"""One process of a data-parallel float64 training run, started by torchrun from tests/train/test_distributed.py.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/train/ddp_worker.py CONFIG EXPORT OUT NORM

Trains the config's model in float64 on a data export, with EDM's clipping history starting at [NORM] (small: the
first steps are clipped); every process then writes OUT/rank<r>.pt with its weights, EMA and clipping history
and, with importance-sampled t, its proposal (process 0 also writes the run's own files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from molgen.checkpoint import save_checkpoint
from molgen.config import RunConfig, load_config
from molgen.data.export import load_export
from molgen.train.clipping import AdaptiveClipper
from molgen.train.distributed import World, process_group
from molgen.train.loop import Trainer


def float64_trainer(config: RunConfig, export_path: str | Path, first_norm: float, world: World | None = None
                    ) -> Trainer:
    """A trainer of the config's model in float64 (weights from the config's seed) on a data export, with the
    clipping history starting at [first_norm]."""
    export = load_export(export_path, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        model = config.model.build().double()
    trainer = Trainer(config, export.splits["train"], export.splits["valid"], model=model,
                      node_histogram=export.node_histogram, world=world)
    trainer.clipper = AdaptiveClipper([first_norm])
    return trainer


def main(config_path: str, export_path: str, out: str, first_norm: str) -> None:
    torch.set_num_threads(1)
    world = World.from_environment()
    with process_group(world, torch.device("cpu")):
        trainer = float64_trainer(load_config(config_path), export_path, float(first_norm), world)
        trainer.run()
        state = {"model": trainer.model.state_dict(), "ema": trainer.ema.state_dict(),
                 "clip_history": trainer.clipper.history, "step": trainer.step,
                 "time_sampler": trainer.state_dict()["time_sampler"]}
        save_checkpoint(state, Path(out) / f"rank{world.rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
