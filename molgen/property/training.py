"""Training a property regressor with `molgen train`: a run config whose model is `property_regressor`.

The trainer's loop, resume, EMA, checkpoints and logging (molgen.train.loop) with the property task's step and
validation in place of the diffusion loss and the validation NLL:
  - data: EDM's half of the training split named by the model config (molgen.property.halves);
  - inputs of a guide: z_t = alpha_t [x, h] + sigma_t eps of the generator's own schedule, with t ~ U{0..T} and eps
    from the trainer's per-molecule randomness, exactly as the diffusion loss noises them; an evaluator sees the
    clean [x, h];
  - loss: L1 on the normalised target, EDM's classifier loss (qm9/property_prediction/main_qm9_prop.py `loss_l1`);
  - validation: the EMA's MAE in the property's unit on the first train.eval_molecules validation molecules (clean;
    a guide's also on z_t with t ~ U{0..T}, a fixed noise seed); the best one copies last.pt to best.pt.
At the end (a time limit included, a signal excepted) the run writes run_dir/regressor.pt (molgen.property.checkpoint)
with the EMA's MAE on the whole validation split.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, size_batches
from molgen.config import RunConfig
from molgen.data.qm9 import QM9Arrays, QM9Dataset, load_qm9_arrays
from molgen.diffusion.process import batch_to_state, noise_state
from molgen.errors import MolgenError
from molgen.geometry.centroid import remove_centroid
from molgen.property.checkpoint import save_regressor, second_half_histograms
from molgen.property.halves import load_half
from molgen.property.properties import Normalisation, get_property, property_values
from molgen.train.loop import RunResult, Trainer
from molgen.train.randomness import per_sample_noise, seeded
from molgen.train.step import OptimisationStep

PROPERTY_MODEL = "property_regressor"


def is_property_run(config: RunConfig) -> bool:
    """Whether the run trains a property regressor."""
    return config.model.name == PROPERTY_MODEL


class PropertyValues:
    """A property's values in its unit, looked up by GDB-9 index."""

    def __init__(self, arrays: QM9Arrays, name: str) -> None:
        table = torch.full((int(arrays.index.max()) + 1,), math.nan, dtype=torch.float64)  # [max index + 1]
        table[torch.from_numpy(arrays.index)] = torch.from_numpy(property_values(arrays.properties, name))
        self.table = table

    def __call__(self, index: Tensor) -> Tensor:
        """Shapes: GDB-9 indices [B] -> float64 [B] on the indices' device."""
        return self.table[index.cpu()].to(index.device)


def regressor_inputs(batch: MoleculeBatch, schedule, t_int: Tensor, noise: tuple[Tensor, Tensor] | None
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """(z_x [M, 3], z_h [M, 6], t [B]) of a batch: z_t at steps t_int [B] with noise (eps_x, eps_h), as the
    diffusion loss forms it; None noise: the clean state at t = 0."""
    x, h = batch_to_state(batch)  # [M, 3], [M, 6]
    if noise is None:
        return x, h, x.new_zeros(batch.num_molecules)
    z_x, z_h = noise_state(x, h, schedule.gamma_at(t_int), *noise, batch.layout)  # [M, 3], [M, 6]
    return z_x, z_h, (t_int.to(torch.float64) / schedule.timesteps).to(x.dtype)


class PropertyStep(OptimisationStep):
    """The optimisation step with EDM's classifier loss: L1 between the prediction and the normalised target.

    `values` (a `PropertyValues`) is set by the `PropertyTrainer` after construction.
    """

    values: PropertyValues

    def per_molecule_loss(self, batch: MoleculeBatch, t_int: Tensor, noise: tuple[Tensor, Tensor],
                          padded_atoms: int | None) -> Tensor:
        conditional = self.model.config.noise_conditional
        z_x, z_h, t = regressor_inputs(batch, self.schedule, t_int, noise if conditional else None)
        prediction = self.parallel_model(z_x, z_h, t, batch.layout)[:, 0]  # [B]
        mean, mad = self.model.target_mean, self.model.target_mad
        target = ((self.values(batch.index) - mean) / mad).to(prediction.dtype)  # [B]
        return (prediction - target).abs()  # [B]


@torch.no_grad()
def validation_mae(module: torch.nn.Module, dataset, values: PropertyValues, schedule, count: int,
                   batch_size: int, seed: int | None) -> dict[str, float]:
    """MAE in the property's unit of `module` on the first `count` molecules of `dataset`: clean ("val_mae") and,
    with a noise `seed`, on z_t with each molecule's t ~ U{0..T} and noise from that seed ("val_mae_noisy")."""
    count = min(count, len(dataset))
    errors: dict[str, list[Tensor]] = {"val_mae": [], "val_mae_noisy": []}
    for chunk in size_batches(dataset.num_atoms[:count], batch_size):
        batch = dataset.batch(chunk)
        truth = values(batch.index)  # [B]
        z = regressor_inputs(batch, schedule, None, None)
        errors["val_mae"].append((module.denormalise(module(*z, batch.layout)[:, 0]) - truth).abs())
        if seed is not None:
            t_int, eps = per_sample_noise(seed, 0, chunk.tolist(), dataset.num_atoms[chunk].tolist(),
                                          schedule.timesteps, batch.x.dtype)  # [B], [M, 9]
            eps_x = remove_centroid(eps[:, :3], batch.batch, batch.num_molecules)  # [M, 3]
            z = regressor_inputs(batch, schedule, t_int, (eps_x, eps[:, 3:]))
            errors["val_mae_noisy"].append((module.denormalise(module(*z, batch.layout)[:, 0]) - truth).abs())
    return {key: float(torch.cat(found).mean()) for key, found in errors.items() if found}


class PropertyTrainer(Trainer):
    """The trainer on a property task (module docstring).

    Args:
        config: a run config whose model is `property_regressor`.
        arrays: all of QM9 (the training half, the validation split and the targets come from it).
        progress, world: as for `Trainer`.
    """

    step_class = PropertyStep
    export_molecules: int | None = None  # validation molecules scored for regressor.pt (None: the whole split)

    def __init__(self, config: RunConfig, arrays: QM9Arrays, *, progress: bool = False, world=None) -> None:
        regressor = config.model.model_config()
        train_set = load_half(regressor.half, arrays=arrays)
        normalisation = Normalisation.of(property_values(train_set.properties, regressor.property))
        model = seeded(config.train.seed, config.model.build)
        model.set_normalisation(normalisation.mean, normalisation.mad)
        super().__init__(config, train_set, QM9Dataset("valid", arrays=arrays), model=model, progress=progress,
                         world=world)
        self.arrays, self.property = arrays, get_property(regressor.property)
        self.values = self.optimisation.values = PropertyValues(arrays, regressor.property)
        self._cpu_before, self._cpu_start = 0.0, time.process_time()

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of training: this process's, plus those a resumed run had recorded (to its last evaluation)."""
        return self._cpu_before + time.process_time() - self._cpu_start

    def load_state_dict(self, payload: dict[str, Any], path: str | Path = "<memory>") -> None:
        super().load_state_dict(payload, path)
        self._cpu_before = max((m["cpu_s"] for m in self.metrics if "cpu_s" in m), default=0.0)
        self._cpu_start = time.process_time()

    def evaluate(self, module: torch.nn.Module | None = None, count: int | None = None) -> dict[str, Any]:
        """The validation MAE of `module` (default: the primary EMA) on `count` molecules (train.eval_molecules)."""
        module = (self.ema.module if module is None else module).eval()
        tc, start = self.config.train, time.perf_counter()
        seed = tc.eval_seed if module.config.noise_conditional else None
        count = tc.eval_molecules if count is None else count
        maes = validation_mae(module, self.valid_set, self.values, self.schedule, count, 256, seed)
        return {"kind": "eval", "step": self.step, "epoch": self.epoch, **maes, "unit": self.property.unit,
                "num_molecules": min(count, len(self.valid_set)), "seconds": time.perf_counter() - start}

    def sample_metrics(self) -> None:
        """A regressor samples nothing."""
        return None

    def _validate(self, log_file) -> bool:
        """Evaluate, keep and note the validation MAE; whether it is the best yet."""
        earlier = [m["val_mae"] for m in self.metrics if "val_mae" in m]
        record = self.evaluate()
        self._record(record, log_file)
        self._note(_describe(record))
        return math.isfinite(record["val_mae"]) and record["val_mae"] < min(earlier, default=math.inf)

    def run(self, max_steps: int | None = None, time_limit: float | None = None) -> RunResult:
        """Train (as `Trainer.run`), then write run_dir/regressor.pt unless a signal stopped the run."""
        result = super().run(max_steps, time_limit)
        if not result.interrupted and self.world.is_main:
            self.export(self.run_dir / "regressor.pt")
        return result

    def export(self, path: Path) -> Path:
        """Write the primary EMA with its metadata and validation MAE (`export_molecules`) to `path`."""
        cpu = self.cpu_seconds
        record = self.evaluate(count=self.export_molecules or len(self.valid_set))
        self._note(_describe(record))
        histograms = second_half_histograms(self.arrays, self.property.name)
        save_regressor(path, self.ema.module, self.config, histograms, steps=self.step, molecules=self.molecules,
                       cpu_seconds=cpu, validation=record)
        self._note(f"regressor written to {path}")
        return path

    def _record(self, record: dict[str, Any], log_file) -> None:
        super()._record({**record, "cpu_s": self.cpu_seconds}, log_file)


def _describe(record: dict[str, Any]) -> str:
    noisy = f", on z_t {record['val_mae_noisy']:.4g}" if "val_mae_noisy" in record else ""
    return (f"step {record['step']}: validation MAE {record['val_mae']:.4g} {record['unit']} (EMA, clean{noisy}; "
            f"{record['num_molecules']} molecules, {record['seconds']:.0f} s)")


def property_trainer(config: RunConfig, data: Path | None, *, progress: bool, world) -> PropertyTrainer:
    """The trainer of a property run (MolgenError for an exported data file, which holds no properties)."""
    if data is not None:
        raise MolgenError("--data: a property regressor trains on the QM9 cache (its properties), not an exported "
                          "data file")
    arrays = load_qm9_arrays(Path(config.data.cache_dir) if config.data.cache_dir else None)
    return PropertyTrainer(config, arrays, progress=progress, world=world)

