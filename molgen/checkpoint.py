"""Checkpoints: one self-describing file per training state (nanoGPT style), written atomically.

A checkpoint (format 3) is a dict saved with `torch.save`:
  format_version  int, CHECKPOINT_FORMAT for files this molgen writes
  molgen_version  str
  config          the resolved RunConfig as a plain dict
  model, ema      state dicts of the trained model and of the EMA to sample from (the primary one; in a shipped
                  file, the best cooled-down one: molgen.train.cooldown)
  emas            {decay per 64 molecules, as in train.ema_decays: the EMA's state dict}
  molecules       molecules seen (the unit of the learning-rate and EMA schedules)
  rewarmup_start, cooldown_start   molecules seen where a re-warm-up and a cooldown branch began (or None)
  optimizer       AdamW's state dict
  step, epoch, batch_in_epoch   steps taken; the epoch and the position within it of the next batch
  clip_history    EDM's adaptive-clipping norms (oldest first)
  consecutive_nonfinite, skipped_steps   the NaN guard's counters
  node_histogram  int64 [30], molecules per atom count in the training split (p(N) for sampling and the NLL)
  rng             torch (CPU and CUDA), Python and NumPy generator states
  metrics         list of dicts: the evaluation and sample-metric records so far
  best_nll        the best validation NLL so far (None before the first evaluation)
  time_sampler    importance-sampled t's proposal and history of losses (molgen.train.timesampling), or None

Older formats are migrated on load (format 0: the model weights under "model_state", no metrics, best_nll or
skipped_steps; format 1: bf16 autocast was a model setting, `model.config.autocast_bf16`, now a run-time
choice; format 2: one EMA, decay per step, schedules in steps). Files are read with
`torch.load(weights_only=True)`, which unpickles only tensors and plain containers, never code.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from molgen.atomic import atomic_write
from molgen.config import DiffusionConfig, ModelConfig, RunConfig
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.schedule import NoiseSchedule
from molgen.errors import MolgenError

CHECKPOINT_FORMAT = 3
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "qm9_ponita_cpu.pt"

REQUIRED_KEYS = (
    "format_version", "molgen_version", "config", "model", "ema", "optimizer", "step", "epoch", "batch_in_epoch",
    "clip_history", "consecutive_nonfinite", "skipped_steps", "node_histogram", "rng", "metrics", "best_nll",
    "emas", "molecules",
)


class CheckpointError(MolgenError):
    """A checkpoint file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"checkpoint {path}: {problem}")
        self.path, self.problem = Path(path), problem


def decay_key(decay: float) -> str:
    """The name of the EMA of a decay (per 64 molecules) in `emas` and in reports ('0.999')."""
    return repr(float(decay))


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write `payload` to `path` atomically: a failed or interrupted save leaves the previous file intact."""
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def copy_checkpoint(source: str | Path, target: str | Path) -> None:
    """Copy a checkpoint file atomically (e.g. last.pt -> best.pt)."""
    with open(source, "rb") as src, atomic_write(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _migrate_0_to_1(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 0 -> 1: "model_state" became "model"; metrics, best_nll and skipped_steps were added."""
    payload = dict(payload)
    payload["model"] = payload.pop("model_state")
    payload.setdefault("metrics", [])
    payload.setdefault("best_nll", None)
    payload.setdefault("skipped_steps", 0)
    payload["format_version"] = 1
    return payload


def _migrate_1_to_2(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: precision left the model config (`autocast_bf16`) for the run-time `train.precision`.

    The stored run is resumed under `train.precision: auto` like any other; the weights are the same in any
    precision, so a run trained in bf16 can continue in fp32 and the other way round.
    """
    payload = dict(payload)
    config = dict(payload["config"])
    model = dict(config["model"])
    model["config"] = {k: v for k, v in model.get("config", {}).items() if k != "autocast_bf16"}
    config["model"] = model
    config["train"] = {**config.get("train", {}), "precision": "auto"}
    payload["config"] = config
    payload["format_version"] = 2
    return payload


def _migrate_2_to_3(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 2 -> 3: schedules count molecules seen; EMAs at several decays, each given per 64 molecules.

    The single EMA (decay per step) becomes `emas` {its decay per 64 molecules: state} and `train.ema_decays`;
    molecules seen = step x batch size. A run resumed with more decays starts the new EMAs from this one.
    """
    payload = dict(payload)
    config = dict(payload["config"])
    train = dict(config.get("train", {}))
    batch_size = int(config.get("data", {}).get("batch_size", 64))
    decay = float(train.pop("ema_decay", 0.9999)) ** (64 / batch_size)  # per step -> per 64 molecules
    train["ema_decays"] = [decay]
    config["train"] = train
    payload["config"] = config
    payload["emas"] = {decay_key(decay): payload["ema"]}
    payload["molecules"] = int(payload["step"]) * batch_size
    payload.setdefault("rewarmup_start", None)
    payload.setdefault("cooldown_start", None)
    payload["format_version"] = 3
    return payload


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _migrate_0_to_1, 1: _migrate_1_to_2, 2: _migrate_2_to_3,
}
"""MIGRATIONS[v] turns a format-v payload into format v + 1."""


def _is_zip_archive(path: Path) -> bool:
    """Whether the file starts as a zip archive does (torch.save's format since PyTorch 1.6)."""
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read, check and migrate a checkpoint to the current format.

    Raises CheckpointError (a MolgenError) for a missing, truncated or corrupt file, a file that is not a molgen
    checkpoint, a format newer than this molgen reads, or a checkpoint that lacks required entries.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, f"it is a folder, not a checkpoint file (name one, e.g. {path / 'last.pt'})")
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        if not _is_zip_archive(path):
            raise CheckpointError(path, "not a molgen checkpoint (not a file that torch.save writes)")
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(path, "not a molgen checkpoint (it holds Python objects besides tensors and plain "
                                    "data, which a molgen checkpoint never does)") from None
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 (zip and EOF errors of a damaged file all mean the same)
        raise CheckpointError(path, f"cannot be read (truncated or corrupt file?): {_first_line(err)}") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(path, "not a molgen training checkpoint (no format_version entry)")
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(path, f"invalid format_version {version!r}")
    if version > CHECKPOINT_FORMAT:
        raise CheckpointError(path, f"written in checkpoint format {version}, newer than this molgen reads "
                                    f"(up to {CHECKPOINT_FORMAT}); upgrade molgen")
    while payload["format_version"] < CHECKPOINT_FORMAT:
        old = payload["format_version"]
        try:
            payload = MIGRATIONS[old](payload)
        except KeyError as err:
            raise CheckpointError(path, f"format {old} lacks the entry {err} needed to migrate it") from None
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(path, f"missing entries {missing}")
    return payload


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths where two nested config dicts differ, as 'path: old -> new'."""
    differences = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, path + ".")
        elif _normalise(a) != _normalise(b):
            differences.append(f"{path}: {a!r} -> {b!r}")
    return differences


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_resume_config(payload: dict[str, Any], config, path: str | Path) -> list[str]:
    """Check that `config` (a RunConfig) can continue the checkpoint's run.

    The model and the diffusion must be the same (else CheckpointError listing the differences); other
    differences (learning rate, max_steps, evaluation schedule, ...) are allowed and returned as a list.
    """
    stored = payload["config"]
    try:
        stored_model = ModelConfig.from_dict(stored["model"]).to_dict()
        stored_diffusion = DiffusionConfig.from_dict(stored["diffusion"]).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(path, f"its stored config is unusable: {err}") from None
    fixed = config_differences({"model": stored_model, "diffusion": stored_diffusion},
                               {"model": config.model.to_dict(), "diffusion": config.diffusion.to_dict()})
    if fixed:
        raise CheckpointError(path, "config mismatch: the run was trained with a different model or diffusion ("
                                    + "; ".join(fixed) + "); resume with the run's own config.json")
    rest_old = {k: v for k, v in stored.items() if k not in ("model", "diffusion")}
    rest_new = {k: v for k, v in config.to_dict().items() if k not in ("model", "diffusion")}
    return config_differences(rest_old, rest_new)


@dataclass(frozen=True)
class LoadedModel:
    """A denoiser ready to sample or score, with what the diffusion needs around it.

    Attributes:
        model: the denoiser (`molgen.diffusion.Denoiser` call contract) in eval mode, with the weights chosen
            (`use_ema`: the EMA that EDM samples with, else the trained weights).
        config: the run config it was trained with.
        schedule: the noise schedule of its diffusion.
        node_distribution: p(N), the atom counts of its training split.
        step: training steps taken; metrics: the run's evaluation records; path: the file (None if built in memory).
    """

    model: torch.nn.Module
    config: RunConfig
    schedule: NoiseSchedule
    node_distribution: NodeCountDistribution
    step: int = 0
    metrics: tuple[dict[str, Any], ...] = ()
    use_ema: bool = True
    path: Path | None = None

    @property
    def device(self) -> torch.device:
        """Where the model, schedule and p(N) live."""
        return self.schedule.gamma_table.device


def load_model(path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu") -> LoadedModel:
    """The one way from a checkpoint file to a model: read and migrate it, rebuild its registered denoiser with
    the EMA (default, as EDM samples) or trained weights, its schedule and p(N), all on `device`.

    CheckpointError (a MolgenError) names the file and the problem: unreadable, an invalid stored config, or
    weights that do not fit the model of its config, or a property regressor's training state (no denoiser).
    """
    payload = load_checkpoint(path)
    if (payload["config"].get("model") or {}).get("name") == "property_regressor":
        raise CheckpointError(path, "it holds a property regressor's training state, not a generator (its run "
                                    "writes regressor.pt, read by molgen.property.checkpoint.load_regressor)")
    return _loaded(payload, path, use_ema, device)


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The whole payload of a checkpoint (optimizer, every EMA, random states) for a trainer to resume from: read
    and migrated as `load_model` does, with the same CheckpointError when its config or weights do not fit."""
    payload = load_checkpoint(path)
    _loaded(payload, path, use_ema=False, device="cpu")  # its config is valid and its weights fit its model
    return payload


def _loaded(payload: dict[str, Any], path: str | Path, use_ema: bool, device: str | torch.device) -> LoadedModel:
    """The model, schedule and p(N) of a read checkpoint payload, on `device`."""
    try:
        config = RunConfig.from_dict(payload["config"])
    except ValueError as err:
        raise CheckpointError(path, f"its stored config is invalid: {err}") from None
    model = config.model.build()
    try:
        model.load_state_dict(payload["ema" if use_ema else "model"])
    except RuntimeError as err:
        raise CheckpointError(path, f"weights do not fit the model of its config: {_first_line(err)}") from None
    return LoadedModel(
        model=model.to(device).eval(), config=config, schedule=config.diffusion.build_schedule().to(device),
        node_distribution=NodeCountDistribution(payload["node_histogram"]).to(device), step=int(payload["step"]),
        metrics=tuple(payload["metrics"]), use_ema=use_ema, path=Path(path),
    )


def resolve_checkpoint(path: str | Path | None = None) -> Path:
    """The checkpoint to use: `path`, else $MOLGEN_CHECKPOINT, else the shipped checkpoints/qm9_ponita_cpu.pt.

    MolgenError when $MOLGEN_CHECKPOINT names no file, or when it is unset (or empty) and the shipped file is
    missing; a bad given path is load_model's error.
    """
    if path is not None:
        return Path(path)
    variable = os.environ.get("MOLGEN_CHECKPOINT")
    if variable:
        if not Path(variable).is_file():
            what = "a folder" if Path(variable).is_dir() else "no such file"
            raise MolgenError(f"MOLGEN_CHECKPOINT={variable}: {what}; set it to a checkpoint file, or unset it to use "
                              "the shipped checkpoint")
        return Path(variable)
    if not SHIPPED_CHECKPOINT.is_file():
        raise MolgenError(f"the shipped checkpoint is missing ({SHIPPED_CHECKPOINT}); pass a checkpoint path or set "
                          "MOLGEN_CHECKPOINT")
    return SHIPPED_CHECKPOINT
