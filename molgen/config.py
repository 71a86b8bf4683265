"""Run configuration: frozen dataclasses for data, diffusion, model and training, loaded from YAML or JSON.

A run is described by one `RunConfig(data, diffusion, model, train, run_dir)`. Every section has `to_dict()` and
`from_dict()`; unknown keys raise ValueError naming them, and invalid values raise ValueError naming the field
and the allowed values when the dataclass is built. Numbers written as strings (PyYAML reads `1e-4` as a string)
are accepted where a number is expected. Command-line overrides use dotted paths: `train.lr=3e-4`,
`model.config.hidden=128`.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from molgen.choices import LOSS_WEIGHTINGS, MAX_SEED, PRECISIONS, SAMPLERS, TIME_SAMPLINGS
from molgen.configbase import (DictConfig, apply_override, as_distinct_fractions, as_integer, as_number, check_bool,
                               check_choice, check_keys, parse_value, read_config_file, set_field)
from molgen.models.registry import model_names, model_spec

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")  # molgen.device checks that the device is here


# ------------------------------------------------------------------------------------------------ sections


@dataclass(frozen=True)
class DataConfig(DictConfig):
    """The training data.

    Attributes:
        cache_dir: QM9 cache folder (None: $MOLGEN_CACHE_DIR or ~/.cache/molgen).
        batch_size: molecules per batch (EDM: 64).
        bucket_by_size: batches of molecules of similar size (less padding); else uniformly random batches.
        max_train_molecules: train on the first N molecules of the training split only (smoke tests); None: all.
        random_rotation: turn every training molecule by its own uniformly random rotation at every step (data
            augmentation for a denoiser that is only approximately equivariant, such as PONITA on a fixed grid of
            orientations); the steps t and the noise stay the same as without it.
    """

    SECTION = "data"

    cache_dir: str | None = None
    batch_size: int = 64
    bucket_by_size: bool = True
    max_train_molecules: int | None = None
    random_rotation: bool = False

    def __post_init__(self) -> None:
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, Path)):
            raise ValueError(f"data.cache_dir must be a path or null, got {self.cache_dir!r}")
        if self.cache_dir is not None:
            set_field(self, "cache_dir", str(self.cache_dir))
        set_field(self, "batch_size", as_integer("data", "batch_size", self.batch_size))
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        check_bool("data", "bucket_by_size", self.bucket_by_size)
        check_bool("data", "random_rotation", self.random_rotation)
        if self.max_train_molecules is not None:
            set_field(self, "max_train_molecules", as_integer("data", "max_train_molecules", self.max_train_molecules))
            if self.max_train_molecules < self.batch_size:
                raise ValueError(f"data.max_train_molecules must be >= data.batch_size ({self.batch_size}) or null, "
                                 f"got {self.max_train_molecules}")


@dataclass(frozen=True)
class DiffusionConfig(DictConfig):
    """EDM's diffusion: the polynomial_2 schedule and the loss normalisation.

    Attributes:
        timesteps: T (EDM: 1000).
        precision: s of the polynomial_2 schedule (EDM: 1e-5).
        normalization: "molecule" (divide each molecule's squared error by 9 * its own atom count) or "padded"
            (by 9 * the largest molecule of the batch, EDM's padding).
    """

    SECTION = "diffusion"

    timesteps: int = 1000
    precision: float = 1e-5
    normalization: Literal["molecule", "padded"] = "molecule"

    def __post_init__(self) -> None:
        set_field(self, "timesteps", as_integer("diffusion", "timesteps", self.timesteps))
        if self.timesteps < 1:
            raise ValueError(f"diffusion.timesteps must be >= 1, got {self.timesteps}")
        set_field(self, "precision", as_number("diffusion", "precision", self.precision))
        if not 0 < self.precision < 0.5:
            raise ValueError(f"diffusion.precision must lie in (0, 0.5), got {self.precision}")
        check_choice("diffusion", "normalization", self.normalization, ("molecule", "padded"))

    def build_schedule(self):
        """The noise schedule (a `PolynomialSchedule`)."""
        from molgen.diffusion import PolynomialSchedule

        return PolynomialSchedule(self.timesteps, self.precision)


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """The denoiser: a registered model's name (molgen.models.registry) and the fields of its config class.

    `config` is resolved on construction to the model config's full field dict (defaults filled in), so a
    checkpoint records every field even if a default changes later.
    """

    SECTION = "model"

    name: str = "ponita"
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("model", "name", self.name, model_names())
        if not isinstance(self.config, dict):
            raise ValueError(f"model.config must be a mapping of {self.name} fields, got {self.config!r}")
        if "autocast_bf16" in self.config:
            raise ValueError("model.config.autocast_bf16 is no longer a model setting: precision is chosen at run "
                             "time (train.precision or --precision: auto, fp32 or bf16); remove the key")
        try:
            resolved = self.model_config().to_dict()
        except (ValueError, TypeError) as err:
            raise ValueError(f"model.config: {err}") from None
        set_field(self, "config", resolved)

    def model_config(self):
        """The model's config class built from `config` (numeric strings in float fields read as floats)."""
        cls = model_spec(self.name).config_class
        float_fields = {f.name for f in fields(cls) if "float" in str(f.type)}
        values = {key: as_number("model.config", key, value) if key in float_fields and isinstance(value, str)
                  else value for key, value in self.config.items()}
        return cls.from_dict(values)

    def build(self):
        """A fresh denoiser module."""
        return model_spec(self.name).model_class(self.model_config())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: name and the resolved model config."""
        return {"name": self.name, "config": dict(self.config)}

    def __hash__(self) -> int:
        """A hash of the name and the resolved config (a dict, which is not hashable itself)."""
        return hash((self.name, json.dumps(self.config, sort_keys=True)))


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    """Optimisation, EMA, clipping, and the schedule of checkpoints, evaluations and samples.

    Attributes:
        seed: seeds the batch order (per epoch) and every molecule's t and noise (per step and molecule).
        lr: peak learning rate of AdamW.
        warmup_steps: linear warm-up from lr / warmup_steps to lr (0: none); older runs' form of warmup_molecules.
        warmup_molecules: linear warm-up over this many molecules (0: none; set this or warmup_steps).
        lr_decay: "none" (constant after warm-up: the main branch of warmup-stable-decay) or "cosine" (to min_lr at
            lr_decay_steps). Schedules count molecules seen (molgen.train.schedule).
        min_lr: the final learning rate of the cosine decay and of a cooldown.
        lr_decay_steps: the step where the cosine decay reaches min_lr (None: max_steps).
        rewarmup_molecules: after a resume that changes lr or data.batch_size, warm up again over this many
            molecules (0: never).
        cooldown_molecules: > 0 makes the run a cooldown branch: resumed from a main-branch checkpoint into its own
            run_dir, it decays the learning rate to min_lr over this many molecules, then ships the EMA with the
            best validation NLL (molgen.train.cooldown). 0: the main branch.
        weight_decay, betas, amsgrad: AdamW's (EDM: 1e-12, (0.9, 0.999), amsgrad).
        ema_decays: decays per 64 molecules of the exponential moving averages kept (the first one is evaluated
            during training; EDM: 0.9999 at batch 64; 0: the average is the model). A step of B molecules decays by
            ema_decay ** (B / 64).
        adaptive_clipping: EDM's adaptive gradient clipping (at 1.5 mean + 2 std of the last 50 norms).
        max_steps: train until this many steps (batches) have been taken.
        checkpoint_every: write run_dir/last.pt every N steps (also at the end and on interruption).
        log_every: one row of log.csv per N steps (means over the window).
        eval_every: validation NLL with the EMA weights every N steps (0: never); decides best.pt.
        eval_molecules: the first N validation molecules form the fixed evaluation subset.
        eval_seed: seed of the evaluation noise (fixed, so evaluations are comparable).
        sample_every: sample EMA molecules and log stability and validity every N steps (0: never).
        sample_count, sample_sampler, sample_steps, sample_batch_size, sample_seed: how.
        max_consecutive_nonfinite: stop after this many consecutive steps with a non-finite loss or gradient.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N".
        threads: torch intra-op threads (None: the cores this process may use, molgen.threads).
        precision: "auto" (bf16 autocast where the hardware has native bf16, else fp32), "fp32" or "bf16".
        loss_weighting: the multiplier of each ε-L2 term at t > 0 (molgen.diffusion.weighting): "edm" (1, EDM's),
            "min_snr" (min(SNR, min_snr_gamma) / SNR) or "clamped_snr" (clamp(SNR, 0.05, 1.5) / SNR).
        time_sampling: "uniform" (EDM's) or "importance": t from a proposal q refitted every importance_refit_every
            steps to the last importance_history losses per t, terms weighted by p / q (molgen.train.timesampling).
        compile: torch.compile PONITA's network for the training step (needs a C++ compiler; molgen.train.compile).
    """

    SECTION = "train"

    seed: int = 0
    lr: float = 1e-4
    warmup_steps: int = 0
    warmup_molecules: int = 0
    lr_decay: Literal["none", "cosine"] = "none"
    min_lr: float = 0.0
    lr_decay_steps: int | None = None
    rewarmup_molecules: int = 0
    cooldown_molecules: int = 0
    weight_decay: float = 1e-12
    betas: tuple[float, float] = (0.9, 0.999)
    amsgrad: bool = True
    ema_decays: tuple[float, ...] = (0.9999,)
    adaptive_clipping: bool = True
    max_steps: int = 1_700_000
    checkpoint_every: int = 1000
    log_every: int = 10
    eval_every: int = 10_000
    eval_molecules: int = 2000
    eval_seed: int = 0
    sample_every: int = 20_000
    sample_count: int = 300
    sample_sampler: str = "heun"  # a name of molgen.choices.SAMPLER_TABLE
    sample_steps: int = 20
    sample_batch_size: int = 100
    sample_seed: int = 0
    max_consecutive_nonfinite: int = 10
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # one of molgen.choices.PRECISIONS
    loss_weighting: str = "edm"  # one of molgen.choices.LOSS_WEIGHTINGS
    min_snr_gamma: float = 5.0
    time_sampling: str = "uniform"  # one of molgen.choices.TIME_SAMPLINGS
    importance_history: int = 10
    importance_refit_every: int = 10
    compile: bool = False

    def __post_init__(self) -> None:
        s = "train"
        integers = {
            "seed": 0, "warmup_steps": 0, "warmup_molecules": 0, "rewarmup_molecules": 0, "cooldown_molecules": 0,
            "max_steps": 1, "checkpoint_every": 1, "log_every": 1, "eval_every": 0,
            "eval_molecules": 1, "eval_seed": 0, "sample_every": 0, "sample_count": 1, "sample_steps": 1,
            "sample_batch_size": 1, "sample_seed": 0, "max_consecutive_nonfinite": 1, "importance_history": 1,
            "importance_refit_every": 1,
        }
        for name, lowest in integers.items():
            value = as_integer(s, name, getattr(self, name))
            if value < lowest:
                raise ValueError(f"{s}.{name} must be an integer >= {lowest}, got {value}")
            set_field(self, name, value)
        for name in ("seed", "eval_seed", "sample_seed"):
            if getattr(self, name) > MAX_SEED:
                raise ValueError(f"{s}.{name} must be an integer from 0 to 2**64 - 1, got {getattr(self, name)}")
        for name in ("lr", "min_lr", "weight_decay", "min_snr_gamma"):
            set_field(self, name, as_number(s, name, getattr(self, name)))
        for name in ("lr", "min_snr_gamma"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{s}.{name} must be a finite number > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"{s}.min_lr must lie in [0, lr = {self.lr}], got {self.min_lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"{s}.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        set_field(self, "ema_decays", as_distinct_fractions(s, "ema_decays", self.ema_decays))
        if self.warmup_steps and self.warmup_molecules:
            raise ValueError(f"{s}.warmup_molecules and {s}.warmup_steps: set one of them (the other 0)")
        if self.cooldown_molecules and not self.min_lr < self.lr:
            raise ValueError(f"{s}.min_lr must be below lr ({self.lr}) in a cooldown branch, got {self.min_lr}")
        check_choice(s, "lr_decay", self.lr_decay, ("none", "cosine"))
        if self.lr_decay_steps is not None:
            set_field(self, "lr_decay_steps", as_integer(s, "lr_decay_steps", self.lr_decay_steps))
            if self.lr_decay_steps <= self.warmup_steps:
                raise ValueError(f"{s}.lr_decay_steps must exceed warmup_steps ({self.warmup_steps}) or be null, "
                                 f"got {self.lr_decay_steps}")
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError(f"{s}.betas must be two numbers in [0, 1), got {betas!r}")
        betas = tuple(as_number(s, "betas", b) for b in betas)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{s}.betas must be two numbers in [0, 1), got {list(betas)}")
        set_field(self, "betas", betas)
        for name in ("amsgrad", "adaptive_clipping", "compile"):
            check_bool(s, name, getattr(self, name))
        check_choice(s, "sample_sampler", self.sample_sampler, SAMPLERS)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            from molgen.device import not_available  # torch, only for this message
            raise ValueError(f"{s}.{not_available(self.device)}")
        if self.threads is not None:
            set_field(self, "threads", as_integer(s, "threads", self.threads))
            if self.threads < 1:
                raise ValueError(f"{s}.threads must be an integer >= 1 or null, got {self.threads}")
        check_choice(s, "precision", self.precision, PRECISIONS)
        check_choice(s, "loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        check_choice(s, "time_sampling", self.time_sampling, TIME_SAMPLINGS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields (betas as a list)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        values["ema_decays"] = list(self.ema_decays)
        return values


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs: data, diffusion, model, training and the run folder."""

    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_dir: str = "runs/qm9_ponita"

    def __post_init__(self) -> None:
        for name, cls in (("data", DataConfig), ("diffusion", DiffusionConfig), ("model", ModelConfig),
                          ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"RunConfig.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.run_dir, (str, Path)) or not str(self.run_dir):
            raise ValueError(f"run_dir must be a folder path, got {self.run_dir!r}")
        set_field(self, "run_dir", str(self.run_dir))

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (JSON-able)."""
        return {"data": self.data.to_dict(), "diffusion": self.diffusion.to_dict(), "model": self.model.to_dict(),
                "train": self.train.to_dict(), "run_dir": self.run_dir}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a nested dict; missing sections take their defaults, unknown keys raise ValueError."""
        check_keys(cls, values, "the run config")
        sections = {"data": DataConfig, "diffusion": DiffusionConfig, "model": ModelConfig, "train": TrainConfig}
        built = {name: section.from_dict(values.get(name) or {}) for name, section in sections.items()}
        return cls(**built, **({"run_dir": values["run_dir"]} if "run_dir" in values else {}))

    def replace(self, overrides: dict[str, Any]) -> RunConfig:
        """A new config with dotted-path overrides applied, e.g. {"train.lr": 3e-4, "model.config.hidden": 128}."""
        values = self.to_dict()
        for path, value in overrides.items():
            apply_override(values, path, value)
        return RunConfig.from_dict(values)


# ------------------------------------------------------------------------------------------------ files


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                options: dict[str, str] | None = None) -> RunConfig:
    """Load a RunConfig from a YAML or JSON file, with optional dotted-path overrides.

    A ValueError names where the problem comes from: the file, or the override after which it appears, as
    `options[key]` (the command-line option that set it, e.g. "--max-steps 0"), else "the override KEY=VALUE".
    """
    values, overrides = read_config_file(path), dict(overrides or {})
    try:
        return RunConfig.from_dict(_overridden(values, overrides))
    except ValueError as err:
        problem = str(err)
    keys, options = list(overrides), options or {}
    sources = [str(path), *(options.get(key, f"the override {key}={overrides[key]}") for key in keys)]
    for count in range(len(keys)):  # the file alone, then with the first overrides: the first to show the problem
        if _problem(values, {key: overrides[key] for key in keys[:count]}) == problem:
            raise ValueError(f"{sources[count]}: {problem}")
    raise ValueError(f"{sources[-1]}: {problem}")


def _overridden(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config file's `values` with the dotted-path overrides applied (ValueError for a bad path)."""
    values = copy.deepcopy(values)
    for key, value in overrides.items():
        apply_override(values, key, value)
    return values


def _problem(values: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """What is wrong with the config file's `values` under the overrides, or None when they make a RunConfig."""
    try:
        RunConfig.from_dict(_overridden(values, overrides))
    except ValueError as err:
        return str(err)
    return None


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as JSON (atomically)."""
    from molgen.atomic import atomic_write

    with atomic_write(path) as handle:
        json.dump(config.to_dict(), handle, indent=2)
        handle.write("\n")


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `section.field=value` into (path, value); ValueError if there is no '=' or no path."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"an override must look like section.field=value (e.g. train.lr=3e-4), got {text!r}")
    return path.strip(), parse_value(value.strip())
