"""The cooldown branch of warmup-stable-decay (Hägele et al. 2024): a checkpoint to ship at any point of a run.

The main branch trains at a constant learning rate and never ends. A run with `train.cooldown_molecules = N > 0`
resumed from a main-branch checkpoint is a cooldown branch: it writes only to a run folder of its own (first a
copy of the starting state as main.pt), decays the learning rate to `min_lr` over N molecules
(molgen.train.schedule) and, at its end, evaluates the fixed-subset validation NLL of every EMA and writes

  shipped.pt    the main branch's state where the branch started, so `molgen train CONFIG --resume shipped.pt`
                continues the main branch, with `ema` (the sampling weights, what `molgen.checkpoint.load_model`
                reads) replaced by the cooled-down EMA of the best validation NLL, and a `shipped` entry describing it;
  shipped.json  every EMA's validation NLL and the choice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from molgen.atomic import atomic_write
from molgen.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

MAIN_NAME, SHIPPED_NAME, REPORT_NAME = "main.pt", "shipped.pt", "shipped.json"


def _check_own_folder(payload: dict[str, Any], config, path: str | Path) -> None:
    """A cooldown branch may not write into the folder of the main branch it starts from."""
    run_dir = Path(config.run_dir).resolve()
    main_dirs = {Path(path).resolve().parent}
    if payload["config"].get("run_dir"):
        main_dirs.add(Path(payload["config"]["run_dir"]).resolve())
    if run_dir in main_dirs:
        raise CheckpointError(path, f"a cooldown branch writes to a run folder of its own, not the main branch's "
                                    f"{config.run_dir}: pass --run-dir (e.g. {config.run_dir}_cooldown)")


def branch_points(payload: dict[str, Any], config, path: str | Path = "<memory>") -> tuple[int | None, int | None]:
    """(re-warm-up start, cooldown start) in molecules seen, for a run resumed from `payload` under `config`.

    A cooldown (train.cooldown_molecules > 0) from a main-branch checkpoint starts at its molecules seen and needs
    its own run folder; a cooldown branch's checkpoint continues only as a cooldown. On the main branch, a change of
    train.lr or data.batch_size starts a re-warm-up when train.rewarmup_molecules > 0. CheckpointError otherwise.
    """
    molecules = int(payload["molecules"])
    cooldown_start = payload.get("cooldown_start")
    cooling = config.train.cooldown_molecules > 0
    if cooling and cooldown_start is None:
        _check_own_folder(payload, config, path)
        cooldown_start = molecules
    elif not cooling and cooldown_start is not None:
        raise CheckpointError(path, "it holds a cooldown branch, which continues only as one (train.cooldown_molecules "
                                    f"> 0); the main branch resumes from the branch's {MAIN_NAME} or {SHIPPED_NAME}")
    stored = payload["config"]
    changed = (float(stored["train"]["lr"]) != config.train.lr
               or int(stored["data"]["batch_size"]) != config.data.batch_size)
    rewarmup_start = payload.get("rewarmup_start")
    if changed and config.train.rewarmup_molecules and not cooling:
        rewarmup_start = molecules
    return rewarmup_start, cooldown_start


def start_branch(payload: dict[str, Any], config, path: str | Path) -> None:
    """When a cooldown branch starts from the main-branch state `payload`, keep that state as run_dir/main.pt.

    A new branch replaces an older one in the same folder: that one's log and shipped files are removed.
    """
    if config.train.cooldown_molecules <= 0 or payload.get("cooldown_start") is not None:
        return
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("log.csv", "best.pt", SHIPPED_NAME, REPORT_NAME):
        (run_dir / name).unlink(missing_ok=True)
    save_checkpoint(payload, run_dir / MAIN_NAME)


def _evaluate_emas(trainer) -> dict[str, dict[str, Any]]:
    """The fixed-subset validation NLL record of every EMA of the trainer, by decay key."""
    return {key: trainer.evaluate(average.module) for key, average in trainer.emas.averages.items()}


def _best_key(records: dict[str, dict[str, Any] | None], fallback: str) -> str:
    """The EMA of the lowest finite validation NLL (`fallback` when none was evaluated)."""
    finite = {key: r["val_nll"] for key, r in records.items() if r is not None and math.isfinite(r["val_nll"])}
    return min(finite, key=finite.get) if finite else fallback


def finish_cooldown(trainer) -> Path:
    """At the end of a cooldown branch: evaluate every EMA, write shipped.pt and shipped.json; return shipped.pt."""
    run_dir = trainer.run_dir
    records = _evaluate_emas(trainer)
    primary = next(iter(trainer.emas.averages))
    best = _best_key(records, primary)
    report = {
        "ema_decay": float(best),
        "val_nll": None if records[best] is None else records[best]["val_nll"],
        "val_nll_se": None if records[best] is None else records[best]["val_nll_se"],
        "val_nll_by_ema": {key: None if r is None else r["val_nll"] for key, r in records.items()},
        "eval_molecules": None if records[best] is None else records[best]["num_molecules"],
        "branch_start_molecules": trainer.lr_schedule.cooldown_start,
        "cooldown_molecules": trainer.config.train.cooldown_molecules,
        "branch_end_molecules": trainer.molecules,
        "branch_end_step": trainer.step,
        "min_lr": trainer.config.train.min_lr,
    }
    shipped = dict(load_checkpoint(run_dir / MAIN_NAME))
    shipped["ema"] = {name: tensor.detach().cpu() for name, tensor in trainer.emas.averages[best].state_dict().items()}
    shipped["shipped"] = report
    save_checkpoint(shipped, run_dir / SHIPPED_NAME)
    with atomic_write(run_dir / REPORT_NAME) as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    nlls = ", ".join(f"EMA {key}: {'n/a' if nll is None else f'{nll:.3f}'}"
                     for key, nll in report["val_nll_by_ema"].items())
    trainer._note(f"cooldown finished after {trainer.molecules - report['branch_start_molecules']:,} molecules; "
                  f"validation NLL {nlls}; shipped EMA {best} in {run_dir / SHIPPED_NAME}")
    return run_dir / SHIPPED_NAME
