"""The trainer's state as a checkpoint payload (the format: molgen.checkpoint) and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from molgen import __version__
from molgen.checkpoint import CHECKPOINT_FORMAT, CheckpointError
from molgen.train.clipping import AdaptiveClipper
from molgen.train.cooldown import branch_points
from molgen.train.cursor import rescaled_position
from molgen.train.randomness import capture_rng, restore_rng
from molgen.train.schedule import build_schedule


def trainer_state(trainer) -> dict[str, Any]:
    """The checkpoint payload of a `molgen.train.loop.Trainer`."""
    sampler = trainer.optimisation.time_sampler
    return {
        "format_version": CHECKPOINT_FORMAT,
        "molgen_version": __version__,
        "config": trainer.config.to_dict(),
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.state_dict(),
        "emas": trainer.emas.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "batch_in_epoch": trainer.batch_in_epoch,
        "clip_history": trainer.clipper.state_dict(),
        "consecutive_nonfinite": trainer.consecutive_nonfinite,
        "skipped_steps": trainer.skipped_steps,
        "node_histogram": trainer.node_histogram.clone(),
        "rng": capture_rng(),
        "metrics": [dict(m) for m in trainer.metrics],
        "best_nll": trainer.best_nll,
        "molecules": trainer.molecules,
        "rewarmup_start": trainer.lr_schedule.rewarmup_start,
        "cooldown_start": trainer.lr_schedule.cooldown_start,
        "time_sampler": None if sampler is None else sampler.state_dict(),
    }


def restore_trainer_state(trainer, payload: dict[str, Any], path: str | Path = "<memory>") -> None:
    """Give `trainer` the state of `payload` (from `trainer_state`, or `load_checkpoint` of `path`).

    CheckpointError if the weights or the optimizer state do not fit the trainer's model. A batch size other than
    the checkpoint's keeps the fraction of the epoch done; a change of learning rate or batch size may start a
    re-warm-up or a cooldown branch (molgen.train.cooldown).
    """
    try:
        trainer.model.load_state_dict(payload["model"])
        initialised = trainer.emas.load_state_dict(payload["emas"])
        trainer.optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"its weights or optimizer state do not fit this model: {first}") from None
    config = trainer.config
    trainer.step = int(payload["step"])
    trainer.cursor.move_to(int(payload["epoch"]), rescaled_position(payload, config.data.batch_size))
    trainer.molecules = int(payload["molecules"])
    trainer.lr_schedule = build_schedule(config.train, config.data.batch_size, *branch_points(payload, config, path))
    trainer.clipper = AdaptiveClipper(payload["clip_history"])
    trainer.optimisation.consecutive_nonfinite = int(payload["consecutive_nonfinite"])
    trainer.optimisation.skipped_steps = int(payload["skipped_steps"])
    trainer.node_histogram = torch.as_tensor(payload["node_histogram"]).to(torch.int64).cpu()
    trainer.metrics = [dict(m) for m in payload["metrics"]]
    trainer.best_nll = payload["best_nll"]
    restore_rng(payload.get("rng") or {})
    if trainer.optimisation.time_sampler is not None:  # a run without one, or of another T or K, starts it afresh
        trainer.optimisation.time_sampler.load_state_dict(payload.get("time_sampler"))
    if initialised:
        trainer._note(f"EMAs {', '.join(initialised)} start as copies of the checkpoint's nearest EMA")
