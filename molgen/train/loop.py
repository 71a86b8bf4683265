"""The trainer: EDM's training loop (Hoogeboom et al. 2022) with a reproducible, resumable state.

One step: the next size-bucketed batch of the epoch (the order of epoch e comes from (seed, e)); each molecule's
diffusion step t and its [N, 9] noise from a generator seeded by (seed, step, dataset index), positions projected
to zero centroid; EDM's l2 loss; backward; a non-finite loss or gradient norm skips the step (weights,
optimizer, EMA and clipping history untouched); EDM's adaptive gradient clipping; AdamW (amsgrad) at the
scheduled learning rate; the EMA update. Because no randomness depends on anything but (seed, step, index), a run
interrupted and resumed from its checkpoint ends with bitwise the same weights as an uninterrupted one (same
device and thread count), and a data-parallel run can rebuild exactly the same molecules' noise.

Around the steps, `run` writes run_dir/log.csv, evaluates the validation NLL with the EMA weights on a fixed
subset every `eval_every` steps (keeping run_dir/best.pt), samples molecules for stability and validity every
`sample_every` steps (skipped when RDKit is missing), and writes run_dir/last.pt every `checkpoint_every`
steps, at the end, and when interrupted (SIGINT/SIGTERM: the current step finishes, the state is saved) or out of
time (`run(time_limit=...)`).

Under torchrun the trainer is data-parallel (molgen.train.distributed): each process takes its shard of every
global batch, DistributedDataParallel averages the gradients, and process 0 alone logs, evaluates, samples and
writes files; all processes stop at the same step.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from molgen import __version__
from molgen.atomic import atomic_write
from molgen.batch import MoleculeBatch
from molgen.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_resume_config,
    copy_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from molgen.config import RunConfig, save_config
from molgen.data.sampler import RandomBatchSampler, SizeBucketBatchSampler
from molgen.data.stats import node_count_histogram
from molgen.device import resolve_device
from molgen.diffusion import NodeCountDistribution, diffusion_loss, evaluate_nll
from molgen.errors import MolgenError
from molgen.geometry.centroid import remove_centroid
from molgen.precision import resolve_precision, set_precision
from molgen.threads import configure_threads
from molgen.train.batches import FirstMolecules, Prefetcher, rescaled_position
from molgen.train.clipping import AdaptiveClipper, global_grad_norm, scale_gradients
from molgen.train.cooldown import branch_points, finish_cooldown, start_branch
from molgen.train.distributed import (
    World,
    any_process,
    mean_over_processes,
    replicas_agree,
    shard,
)
from molgen.train.ema import EMASet
from molgen.train.randomness import capture_rng, per_sample_noise, restore_rng, seeded
from molgen.train.schedule import build_schedule

log = logging.getLogger(__name__)

REPORT_SECONDS = 30.0  # without a progress bar, a line with the molecules/s at most this often
LOG_COLUMNS = (
    "kind", "step", "epoch", "loss", "grad_norm", "clipped", "skipped", "lr", "mol_per_s",
    "val_nll", "val_nll_se", "atom_stable", "mol_stable", "validity", "uniqueness", "seconds", "time",
)


class NonFiniteError(MolgenError):
    """Too many consecutive steps had a non-finite loss or gradient norm."""


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StepResult:
    """One training step: the loss, the raw gradient norm, clipping, the learning rate and whether it was skipped."""

    step: int
    epoch: int
    loss: float
    grad_norm: float
    threshold: float | None
    clipped: bool
    skipped: bool
    lr: float
    num_molecules: int


@dataclass
class RunResult:
    """How `Trainer.run` ended (`out_of_time`: stopped by its time limit)."""

    step: int
    interrupted: bool
    checkpoint: Path | None
    best_nll: float | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    out_of_time: bool = False


# ------------------------------------------------------------------------------------------------- trainer


class Trainer:
    """EDM training of a denoiser on QM9 (see the module docstring).

    Args:
        config: the run's configuration.
        train_set: the training split (a `QM9Dataset`, or anything with `num_atoms` [D], `len` and `batch(indices)`).
        valid_set: the validation split, for the NLL evaluations (None: no evaluations).
        model: a denoiser to train instead of `config.model.build()` (tests); its weights must fit the config's
            model if checkpoints are to be rebuilt by `load_denoiser`.
        node_histogram: p(N) as counts per atom count (default: the histogram of `train_set`).
        progress: show a tqdm bar and print evaluation results.
        world: the processes of a data-parallel run (default: this process alone); with more than one, the process
            group must be joined first (`molgen.train.distributed.process_group`).
        prefetch: prepare the next batch and its noise on a background thread during each step (None: on CUDA).
    """

    def __init__(
        self,
        config: RunConfig,
        train_set,
        valid_set=None,
        *,
        model: torch.nn.Module | None = None,
        node_histogram: Tensor | None = None,
        progress: bool = False,
        world: World | None = None,
        prefetch: bool | None = None,
    ) -> None:
        self.config, self.progress = config, progress
        self.world = world if world is not None else World()
        tc = config.train
        self.threads = configure_threads(tc.threads)
        self.device = self.world.device(resolve_device(tc.device))
        self.precision = resolve_precision(tc.precision, self.device)
        if node_histogram is None:
            node_histogram = node_count_histogram(train_set)
        self.node_histogram = torch.as_tensor(node_histogram).to(torch.int64).cpu()  # [30]
        if config.data.max_train_molecules is not None:
            train_set = FirstMolecules(train_set, config.data.max_train_molecules)
        if len(train_set) < config.data.batch_size:
            raise MolgenError(f"the training set has {len(train_set)} molecules, fewer than one batch "
                              f"({config.data.batch_size})")
        if config.data.batch_size % self.world.size:
            raise MolgenError(f"data.batch_size ({config.data.batch_size}) must be a multiple of the number of "
                              f"processes ({self.world.size}): each takes an equal share of every batch")
        self.train_set, self.valid_set = train_set, valid_set
        self._num_atoms = [int(n) for n in train_set.num_atoms]  # per dataset index, for the noise
        sampler_cls = SizeBucketBatchSampler if config.data.bucket_by_size else RandomBatchSampler
        self.batch_sampler = sampler_cls(torch.as_tensor(train_set.num_atoms), config.data.batch_size, tc.seed)

        self.schedule = config.diffusion.build_schedule().to(self.device)
        model = model if model is not None else seeded(tc.seed, config.model.build)  # weights from the seed alone
        set_precision(model, self.precision)
        self.model = model.to(self.device).train()
        self.parallel_model = self._data_parallel(self.model)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay,
                                           amsgrad=tc.amsgrad)
        self.emas = EMASet(self.model, tc.ema_decays, config.data.batch_size)
        self.ema = self.emas.primary
        self.clipper = AdaptiveClipper()
        self.lr_schedule = build_schedule(tc, config.data.batch_size)
        use_prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        self.prefetcher = Prefetcher(self._prepare_host) if use_prefetch else None

        self.step = 0  # steps (batches) taken
        self.molecules = 0  # molecules seen (the unit of the learning-rate and EMA schedules)
        self.epoch = 0  # epoch of the next batch
        self.batch_in_epoch = 0  # index of the next batch within its epoch
        self.consecutive_nonfinite = 0
        self.skipped_steps = 0
        self.metrics: list[dict[str, Any]] = []
        self.best_nll: float | None = None
        self._epoch_cache: tuple[int, list[Tensor]] | None = None
        self._eval_batches: list[MoleculeBatch] | None = None
        self._rdkit_note_given = False
        self._stop_requested = False
        self.stop_signal: int | None = None  # the signal that asked this process to stop, if one did
        self._reported_at = -math.inf

    # ------------------------------------------------------------------------------------------ paths

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "log.csv"

    # ------------------------------------------------------------------------------------------ one step

    def _batches(self, epoch: int) -> list[Tensor]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self.batch_sampler.epoch(epoch))
        return self._epoch_cache[1]

    def next_indices(self) -> tuple[Tensor, int]:
        """The dataset indices of the next batch and its epoch (the position advances in `train_step`)."""
        batches = self._batches(self.epoch)
        if self.batch_in_epoch >= len(batches):
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            batches = self._batches(self.epoch)
        return batches[self.batch_in_epoch], self.epoch

    def _prepare_host(self, indices: Tensor, step: int) -> tuple[MoleculeBatch, Tensor, Tensor]:
        """On the CPU: the molecules at `indices`, their steps t_int [B] and noise eps [M, 9]."""
        batch = self.train_set.batch(indices)
        index_list = indices.tolist()
        t_int, eps = per_sample_noise(self.config.train.seed, step, index_list,
                                      [self._num_atoms[i] for i in index_list],
                                      self.config.diffusion.timesteps, batch.x.dtype)  # [B], [M, 9]
        return batch, t_int, eps

    def prepare_batch(self, indices: Tensor, step: int) -> tuple[MoleculeBatch, Tensor, tuple[Tensor, Tensor]]:
        """The molecules at `indices` on the device, their steps t_int [B] and noise (eps_x [M, 3], eps_h [M, 6])."""
        host = self.prefetcher.get(indices, step) if self.prefetcher else self._prepare_host(indices, step)
        batch, t_int, eps = host
        non_blocking = self.device.type == "cuda"
        batch = batch.to(self.device) if batch.x.device != self.device else batch
        t_int = t_int.to(self.device, non_blocking=non_blocking)  # [B]
        eps = eps.to(self.device, non_blocking=non_blocking)  # [M, 9]
        eps_x = remove_centroid(eps[:, :3], batch.batch, batch.num_molecules)  # [M, 3]
        return batch, t_int, (eps_x, eps[:, 3:])

    def _prefetch_next(self) -> None:
        """Start preparing the next batch of this epoch in the background (with a prefetcher)."""
        batches = self._batches(self.epoch)
        if self.prefetcher is not None and self.batch_in_epoch + 1 < len(batches):
            self.prefetcher.ahead(shard(batches[self.batch_in_epoch + 1], self.world), self.step + 1)

    def train_step(self) -> StepResult:
        """Take one step on the next batch (or skip it if the loss or gradient norm is not finite).

        In a data-parallel run this process computes the loss of its shard of the batch; the logged loss is the
        mean over the processes, and all of them skip, clip and step alike.
        """
        tc = self.config.train
        indices, epoch = self.next_indices()  # [B] the global batch
        step = self.step
        batch, t_int, noise = self.prepare_batch(shard(indices, self.world), step)  # this process's B / W molecules
        self._prefetch_next()
        lr = self.lr_schedule(self.molecules)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        normalization = self.config.diffusion.normalization
        padded_atoms = max(self._num_atoms[i] for i in indices.tolist()) if normalization == "padded" else None
        loss = diffusion_loss(self.parallel_model, self.schedule, batch, normalization=normalization, t_int=t_int,
                              noise=noise, padded_atoms=padded_atoms).loss
        loss_value, grad_norm, threshold, clipped = mean_over_processes(loss, self.world), math.nan, None, False
        skipped = not math.isfinite(loss_value)
        if not skipped:
            loss.backward()  # DistributedDataParallel averages the gradients over the processes
            norm = global_grad_norm(self.parameters)  # [] raw global norm
            grad_norm = float(norm)
            skipped = not math.isfinite(grad_norm)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.consecutive_nonfinite += 1
            self.skipped_steps += 1
            log.warning("step %d skipped: non-finite %s (%d in a row)", step,
                        "loss" if not math.isfinite(loss_value) else "gradient norm", self.consecutive_nonfinite)
        else:
            if tc.adaptive_clipping:
                threshold, clipped = self.clipper.record(grad_norm)
                if clipped:
                    scale_gradients(self.parameters, threshold, norm)
            self.optimizer.step()
            self.emas.update(self.model)
            self.consecutive_nonfinite = 0
        self.step, self.batch_in_epoch = step + 1, self.batch_in_epoch + 1
        self.molecules += len(indices)
        if self.consecutive_nonfinite >= tc.max_consecutive_nonfinite:
            where = f"; the last checkpoint {self.last_path} is intact" if self.last_path.exists() else ""
            raise NonFiniteError(
                f"training stopped at step {step}: {self.consecutive_nonfinite} consecutive steps with a non-finite "
                f"loss or gradient norm{where} (lower train.lr, or check the data and the model)"
            )
        return StepResult(step=step, epoch=epoch, loss=loss_value, grad_norm=grad_norm, threshold=threshold,
                          clipped=clipped, skipped=skipped, lr=lr, num_molecules=len(indices))

    def _data_parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the loss calls it: wrapped in DistributedDataParallel when there are several processes.

        The wrapper shares the model's parameters, so the optimizer, the EMA and the checkpoints use the bare
        model.
        """
        if not self.world.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        if not torch.distributed.is_initialized():
            raise MolgenError(f"a run of {self.world.size} processes needs their process group: start it with "
                              "torchrun and `molgen train`")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    # ------------------------------------------------------------------------------------------ evaluation

    def _validation_batches(self) -> list[MoleculeBatch]:
        """The fixed evaluation subset (the first eval_molecules validation molecules), sorted by size and batched."""
        if self._eval_batches is None:
            count = min(self.config.train.eval_molecules, len(self.valid_set))
            num_atoms = torch.as_tensor(self.valid_set.num_atoms[:count])  # [count]
            order = torch.argsort(num_atoms, stable=True)  # [count]
            size = self.config.data.batch_size
            self._eval_batches = [self.valid_set.batch(chunk) for chunk in torch.split(order, size)]
        return self._eval_batches

    def evaluate(self, module: torch.nn.Module | None = None) -> dict[str, Any] | None:
        """Validation NLL of `module` (default: the primary EMA) on the fixed subset (1 pass, fixed seed).

        None without a validation set.
        """
        if self.valid_set is None:
            return None
        from molgen.diffusion import LikelihoodError

        start = time.perf_counter()
        try:
            estimate = evaluate_nll(
                self.ema.module if module is None else module, self.schedule, self._validation_batches(),
                NodeCountDistribution(self.node_histogram), passes=1, generator=self.config.train.eval_seed,
                progress=False, device=self.device,
            )
            nll, se, count = estimate.mean, estimate.standard_error, estimate.num_molecules
        except LikelihoodError as err:
            log.warning("step %d: validation NLL failed: %s", self.step, err)
            nll, se, count = math.nan, math.nan, 0
        return {"kind": "eval", "step": self.step, "epoch": self.epoch, "val_nll": nll, "val_nll_se": se,
                "num_molecules": count, "seconds": time.perf_counter() - start}

    def sample_metrics(self) -> dict[str, Any] | None:
        """Sample molecules with the EMA weights and score them; None (with a note) when RDKit is missing."""
        try:
            from molgen.chem.metrics import evaluate_molecules
        except ImportError as err:
            if not self._rdkit_note_given:
                log.warning("sample metrics skipped during training: RDKit is not available (%s)", err)
                self._rdkit_note_given = True
            return None
        from molgen.diffusion import SamplingError, sample

        tc = self.config.train
        start = time.perf_counter()
        generator = torch.Generator(self.device).manual_seed(tc.sample_seed)
        node_distribution = NodeCountDistribution(self.node_histogram).to(self.device)
        molecules = []
        try:
            with torch.no_grad():
                for first in range(0, tc.sample_count, tc.sample_batch_size):
                    count = min(tc.sample_batch_size, tc.sample_count - first)
                    batch = sample(self.ema.module, self.schedule, node_distribution=node_distribution,
                                   num_molecules=count, sampler=tc.sample_sampler, steps=tc.sample_steps,
                                   generator=generator, device=self.device)
                    molecules += batch.molecules()
        except SamplingError as err:
            log.warning("step %d: sampling failed: %s", self.step, err)
            return {"kind": "sample", "step": self.step, "epoch": self.epoch, "atom_stable": math.nan,
                    "mol_stable": math.nan, "validity": math.nan, "uniqueness": math.nan,
                    "seconds": time.perf_counter() - start}
        metrics = evaluate_molecules(molecules)
        return {"kind": "sample", "step": self.step, "epoch": self.epoch, "atom_stable": metrics.atom_stable,
                "mol_stable": metrics.mol_stable, "validity": metrics.validity, "uniqueness": metrics.uniqueness,
                "num_molecules": len(molecules), "seconds": time.perf_counter() - start}

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint payload (see molgen.checkpoint)."""
        return {
            "format_version": CHECKPOINT_FORMAT,
            "molgen_version": __version__,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "emas": self.emas.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "clip_history": self.clipper.state_dict(),
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "skipped_steps": self.skipped_steps,
            "node_histogram": self.node_histogram.clone(),
            "rng": capture_rng(),
            "metrics": [dict(m) for m in self.metrics],
            "best_nll": self.best_nll,
            "molecules": self.molecules,
            "rewarmup_start": self.lr_schedule.rewarmup_start,
            "cooldown_start": self.lr_schedule.cooldown_start,
        }

    def load_state_dict(self, payload: dict[str, Any], path: str | Path = "<memory>") -> None:
        """Restore the state saved by `state_dict` (a payload from `load_checkpoint`)."""
        try:
            self.model.load_state_dict(payload["model"])
            initialised = self.emas.load_state_dict(payload["emas"])
            self.optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(path, f"its weights or optimizer state do not fit this model: {first}") from None
        self.step, self.epoch = int(payload["step"]), int(payload["epoch"])
        self.batch_in_epoch = rescaled_position(payload, self.config.data.batch_size)
        self.molecules = int(payload["molecules"])
        self.lr_schedule = build_schedule(self.config.train, self.config.data.batch_size,
                                          *branch_points(payload, self.config, path))
        self.clipper = AdaptiveClipper(payload["clip_history"])
        self.consecutive_nonfinite = int(payload["consecutive_nonfinite"])
        self.skipped_steps = int(payload["skipped_steps"])
        self.node_histogram = torch.as_tensor(payload["node_histogram"]).to(torch.int64).cpu()
        self.metrics = [dict(m) for m in payload["metrics"]]
        self.best_nll = payload["best_nll"]
        self._epoch_cache = None
        restore_rng(payload.get("rng") or {})
        if initialised:
            self._note(f"EMAs {', '.join(initialised)} start as copies of the checkpoint's nearest EMA")

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the state to `path` (default run_dir/last.pt) atomically."""
        path = Path(path) if path is not None else self.last_path
        save_checkpoint(self.state_dict(), path)
        return path

    def load_checkpoint(self, path: str | Path) -> list[str]:
        """Continue from a checkpoint; CheckpointError if it is unreadable or its model/diffusion differ.

        Returns the other config differences (allowed, e.g. a new max_steps), as 'path: old -> new'.
        """
        payload = load_checkpoint(path)
        differences = check_resume_config(payload, self.config, path)
        self.load_state_dict(payload, path)
        if self.world.is_main:
            start_branch(payload, self.config, path)
        return differences

    # ------------------------------------------------------------------------------------------ the loop

    def run(self, max_steps: int | None = None, time_limit: float | None = None) -> RunResult:
        """Train until `max_steps` (default config.train.max_steps), with logging, evaluation and checkpoints.

        The state is saved to run_dir/last.pt every checkpoint_every steps, at the end, and when SIGINT or SIGTERM
        arrives (the current step finishes first; a second SIGINT aborts without saving) or `time_limit` seconds
        have passed. Periodic saves wait while steps are being skipped as non-finite, and a NonFiniteError (too
        many in a row) leaves last.pt as it was. In a data-parallel run only process 0 writes files, and a signal
        or the time limit in any process stops all of them after the same step.
        """
        from tqdm.auto import tqdm

        tc = self.config.train
        max_steps = self._last_step(max_steps)
        main = self.world.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.json")
            self._trim_log()
        self._stop_requested, out_of_time = False, False
        deadline = None if time_limit is None else time.monotonic() + time_limit
        window: list[tuple[StepResult, float]] = []
        saved_at = -1
        bar = tqdm(total=max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.progress and main), desc="train")
        with self._signals(), self._log_redirect(), self._open_log() as log_file:
            writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            if log_file.tell() == 0:
                writer.writeheader()
            try:
                while self.step < max_steps:
                    self._stop_requested, out_of_time = any_process(
                        [self._stop_requested, deadline is not None and time.monotonic() >= deadline],
                        self.world, self.device)
                    if self._stop_requested or out_of_time:
                        break
                    start = time.perf_counter()
                    result = self.train_step()
                    seconds = time.perf_counter() - start
                    window.append((result, seconds))
                    bar.update(1)
                    if self.progress:
                        bar.set_postfix(loss=f"{result.loss:.4f}", mol_s=f"{result.num_molecules / seconds:.1f}",
                                        refresh=False)
                    if self.step % tc.log_every == 0:
                        self._write_train_row(writer, window, log_file)
                        window = []
                    improved = False
                    if main and tc.eval_every and self.step % tc.eval_every == 0 and self.valid_set is not None:
                        record = self.evaluate()
                        self._record(record, writer, log_file)
                        nll = record["val_nll"]
                        self._note(f"step {self.step}: validation NLL {nll:.3f} ± {record['val_nll_se']:.3f} "
                                   f"(EMA, {record['num_molecules']} molecules, {record['seconds']:.0f} s)")
                        improved = math.isfinite(nll) and (self.best_nll is None or nll < self.best_nll)
                        if improved:
                            self.best_nll = nll
                    if main and tc.sample_every and self.step % tc.sample_every == 0:
                        record = self.sample_metrics()
                        if record is not None:
                            self._record(record, writer, log_file)
                            self._note(f"step {self.step}: {record.get('num_molecules', 0)} EMA samples: atom "
                                       f"stable {record['atom_stable']:.3f}, mol stable {record['mol_stable']:.3f}, "
                                       f"valid {record['validity']:.3f} ({record['seconds']:.0f} s)")
                    if self.step % tc.checkpoint_every == 0:
                        self._check_replicas()
                    in_nonfinite_streak = self.consecutive_nonfinite > 0  # keep last.pt at a good step
                    if main and (improved or (self.step % tc.checkpoint_every == 0 and not in_nonfinite_streak)):
                        self.save_checkpoint()
                        saved_at = self.step
                    if improved:
                        copy_checkpoint(self.last_path, self.best_path)
            finally:
                bar.close()
                if self.prefetcher is not None:
                    self.prefetcher.close()
            if window:
                self._write_train_row(writer, window, log_file)
            self._check_replicas()
            if main and saved_at != self.step:
                self.save_checkpoint()
        if self._stop_requested:
            self._note(f"interrupted at step {self.step}: state saved to {self.last_path}")
        elif out_of_time:
            self._note(f"time limit of {time_limit:g} s reached at step {self.step}: state saved to {self.last_path}")
        end = self.lr_schedule.cooldown_end()
        if main and end is not None and self.molecules >= end and not (self._stop_requested or out_of_time):
            finish_cooldown(self)
        return RunResult(step=self.step, interrupted=self._stop_requested, checkpoint=self.last_path,
                         best_nll=self.best_nll, metrics=list(self.metrics), out_of_time=out_of_time)

    # ------------------------------------------------------------------------------------------ helpers

    def _last_step(self, max_steps: int | None) -> int:
        """The step to stop at: `max_steps` if given; else where a cooldown branch ends, or train.max_steps."""
        end = self.lr_schedule.cooldown_end()
        if end is None or max_steps is not None:
            return self.config.train.max_steps if max_steps is None else max_steps
        return self.step + max(-(-(end - self.molecules) // self.config.data.batch_size), 0)  # ceil

    def _note(self, message: str) -> None:
        """Tell the user (process 0 only): above the progress bar, else through the log."""
        if not self.world.is_main:
            return
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(message)
        else:
            log.info(message)

    def _record(self, record: dict[str, Any], writer: csv.DictWriter, log_file: io.TextIOBase) -> None:
        self.metrics.append(record)
        writer.writerow({**_formatted(record), "time": f"{time.time():.0f}"})
        log_file.flush()

    def _write_train_row(self, writer: csv.DictWriter, window: list[tuple[StepResult, float]], log_file) -> None:
        results = [r for r, _ in window]
        finite = [r for r in results if not r.skipped]
        molecules, seconds = sum(r.num_molecules for r in results), sum(s for _, s in window)
        row = {
            "kind": "train", "step": self.step, "epoch": results[-1].epoch,
            "loss": sum(r.loss for r in finite) / len(finite) if finite else math.nan,
            "grad_norm": sum(r.grad_norm for r in finite) / len(finite) if finite else math.nan,
            "clipped": sum(r.clipped for r in results), "skipped": sum(r.skipped for r in results),
            "lr": results[-1].lr, "mol_per_s": molecules / seconds if seconds > 0 else math.nan,
            "seconds": seconds, "time": f"{time.time():.0f}",
        }
        writer.writerow(_formatted(row))
        log_file.flush()
        if not self.progress and time.monotonic() - self._reported_at >= REPORT_SECONDS:
            self._reported_at = time.monotonic()
            self._note(f"step {self.step}: loss {row['loss']:.4f}, {row['mol_per_s']:.0f} molecules/s, "
                       f"lr {row['lr']:.3g}, {self.molecules:,} molecules seen")

    def _open_log(self) -> io.TextIOBase:
        """log.csv, opened for appending, in process 0; elsewhere a sink (only process 0 writes files)."""
        return open(self.log_path if self.world.is_main else os.devnull, "a", newline="")

    def _check_replicas(self) -> None:
        """In a data-parallel run, check that every process holds the same weights, EMA and clipping history."""
        history = torch.tensor(self.clipper.history, dtype=torch.float64)  # [<= 50]
        tensors = [*self.model.parameters(), *self.ema.module.parameters(), history]
        if not replicas_agree(tensors, self.world, self.device):
            raise MolgenError(f"at step {self.step} the {self.world.size} processes hold different weights; the "
                              "data-parallel run is out of step (the checkpoint of the last agreeing step is kept)")

    def _trim_log(self) -> None:
        """Drop log rows from steps after the current state (a run killed after its last checkpoint)."""
        if not self.log_path.exists():
            return
        with open(self.log_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        kept = [row for row in rows if _int_or_none(row.get("step")) is not None and int(row["step"]) <= self.step]
        header_ok = self.log_path.read_text().split("\n", 1)[0].strip() == ",".join(LOG_COLUMNS)
        if len(kept) == len(rows) and header_ok:
            return
        with atomic_write(self.log_path) as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM request a clean stop after the current step; a second SIGINT aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame) -> None:
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_requested, self.stop_signal = True, signum
            self._note(f"{signal.Signals(signum).name} received: saving after this step "
                       "(press Ctrl-C again to abort without saving)")

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _log_redirect(self):
        if not self.progress:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _formatted(row: dict[str, Any]) -> dict[str, Any]:
    """Floats with enough digits but not 17."""
    return {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
