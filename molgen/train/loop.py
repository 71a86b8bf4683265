"""The trainer: EDM's training loop (Hoogeboom et al. 2022) with a reproducible, resumable state.

One step (molgen.train.step) takes the next batch of the epoch (molgen.train.cursor) with each molecule's t and
noise (molgen.train.batches); EDM's l2 loss, backward, a skip when the loss or gradient norm is not finite, EDM's
adaptive gradient clipping, AdamW (amsgrad) at the scheduled learning rate, the EMA update. No randomness depends
on anything but the seed and the position (molgen.train.randomness), so a run interrupted and resumed from its
checkpoint (molgen.train.state) ends with bitwise the same weights as an uninterrupted one (same device and thread
count), and a data-parallel run can rebuild exactly the same molecules' noise.

Around the steps, `run` writes run_dir/log.csv (molgen.train.runlog), evaluates the validation NLL with the EMA
weights on a fixed subset every `eval_every` steps (keeping run_dir/best.pt) and samples molecules for stability
and validity every `sample_every` steps (molgen.train.periodic), and writes run_dir/last.pt every
`checkpoint_every` steps, at the end, and when interrupted (molgen.train.signals) or out of time.

Under torchrun the trainer is data-parallel (molgen.train.distributed): each process takes its shard of every
global batch, DistributedDataParallel averages the gradients, and process 0 alone logs, evaluates, samples and
writes files; all processes stop at the same step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch
from molgen.checkpoint import check_resume_config, copy_checkpoint, load_training_state, save_checkpoint
from molgen.config import RunConfig, save_config
from molgen.data.sampler import RandomBatchSampler, SizeBucketBatchSampler
from molgen.data.stats import node_count_histogram
from molgen.device import resolve_device
from molgen.precision import resolve_precision, set_precision
from molgen.threads import configure_threads
from molgen.train.batches import StepBatches, training_subset
from molgen.train.clipping import AdaptiveClipper
from molgen.train.compile import training_view
from molgen.train.cooldown import finish_cooldown, start_branch
from molgen.train.cursor import EpochCursor
from molgen.train.distributed import World, any_process, check_replicas, data_parallel, shard
from molgen.train.ema import EMASet
from molgen.train.periodic import PeriodicChecks
from molgen.train.randomness import seeded
from molgen.train.runlog import LogFile, Notes, train_row, trim_log
from molgen.train.schedule import build_schedule
from molgen.train.signals import StopRequest
from molgen.train.state import restore_trainer_state, trainer_state
from molgen.train.step import OptimisationStep, StepResult


@dataclass
class RunResult:
    """How `Trainer.run` ended (`out_of_time`: stopped by its time limit)."""

    step: int
    interrupted: bool
    checkpoint: Path | None
    best_nll: float | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    out_of_time: bool = False


class Trainer:
    """EDM training of a denoiser on QM9 (see the module docstring).

    Args:
        config: the run's configuration.
        train_set: the training split (a `QM9Dataset`, or anything with `num_atoms` [D], `len` and `batch(indices)`).
        valid_set: the validation split, for the NLL evaluations (None: no evaluations).
        model: a denoiser to train instead of `config.model.build()` (tests); its weights must fit the config's
            model if its checkpoints are to be loaded as a model (molgen.checkpoint).
        node_histogram: p(N) as counts per atom count (default: the histogram of `train_set`).
        progress: show a tqdm bar and print evaluation results.
        world: the processes of a data-parallel run (default: this process alone); with more than one, the process
            group must be joined first (`molgen.train.distributed.process_group`).
        prefetch: prepare the next batch and its noise on a background thread during each step (None: on CUDA).
    """

    step_class = OptimisationStep  # the loss of a training task (molgen.property.training overrides it)

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
        tc, batch_size = config.train, config.data.batch_size
        self.threads = configure_threads(tc.threads)
        self.device = self.world.device(resolve_device(tc.device))
        self.precision = resolve_precision(tc.precision, self.device)
        histogram = node_count_histogram(train_set) if node_histogram is None else node_histogram
        self.node_histogram = torch.as_tensor(histogram).to(torch.int64).cpu()  # [30]
        self.train_set = training_subset(train_set, config.data.max_train_molecules, batch_size, self.world.size)
        self.valid_set = valid_set
        sampler_cls = SizeBucketBatchSampler if config.data.bucket_by_size else RandomBatchSampler
        self.cursor = EpochCursor(sampler_cls(torch.as_tensor(self.train_set.num_atoms), batch_size, tc.seed))
        self.schedule = config.diffusion.build_schedule().to(self.device)
        self._build_model(model)
        self.lr_schedule = build_schedule(tc, batch_size)
        use_prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        self.batches = StepBatches(self.train_set, tc.seed, config.diffusion.timesteps, self.device, use_prefetch,
                                   config.data.random_rotation, self.optimisation.time_sampler)
        self.checks = PeriodicChecks(config, self.schedule, valid_set, self.device)
        self.notes = Notes(self.world.is_main, progress)
        self.stop = StopRequest(self._note)
        self.step = 0  # steps (batches) taken
        self.molecules = 0  # molecules seen (the unit of the learning-rate and EMA schedules)
        self.metrics: list[dict[str, Any]] = []
        self.best_nll: float | None = None

    def _build_model(self, model: torch.nn.Module | None) -> None:
        """The model (initial weights from the seed alone), its optimizer and EMAs, and the optimisation step."""
        tc = self.config.train
        model = model if model is not None else seeded(tc.seed, self.config.model.build)
        set_precision(model, self.precision)
        self.model = model.to(self.device).train()
        parallel_model = data_parallel(training_view(self.model, tc.compile), self.world, self.device)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay,
                                           amsgrad=tc.amsgrad)
        self.emas = EMASet(self.model, tc.ema_decays, self.config.data.batch_size)
        self.ema = self.emas.primary
        self.optimisation = self.step_class(self.model, parallel_model, self.schedule, self.parameters,
                                            self.optimizer, self.emas, self.world, tc,
                                            self.config.diffusion.normalization)

    # ------------------------------------------------------------------------------------------ the pieces' state

    @property
    def epoch(self) -> int:
        """The epoch of the next batch."""
        return self.cursor.epoch

    @property
    def batch_in_epoch(self) -> int:
        """The index of the next batch within its epoch."""
        return self.cursor.batch_in_epoch

    @property
    def clipper(self) -> AdaptiveClipper:
        """EDM's adaptive gradient clipping and its history."""
        return self.optimisation.clipper

    @clipper.setter
    def clipper(self, clipper: AdaptiveClipper) -> None:
        self.optimisation.clipper = clipper

    @property
    def consecutive_nonfinite(self) -> int:
        """Steps skipped in a row as non-finite."""
        return self.optimisation.consecutive_nonfinite

    @property
    def skipped_steps(self) -> int:
        """Steps skipped as non-finite in all."""
        return self.optimisation.skipped_steps

    @property
    def prefetcher(self):
        """The background preparation of the next batch (None without one)."""
        return self.batches.prefetcher

    @property
    def stop_signal(self) -> int | None:
        """The signal that asked this process to stop, if one did."""
        return self.stop.signal

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

    def next_indices(self) -> tuple[Tensor, int]:
        """The dataset indices of the next batch and its epoch (the position advances in `train_step`)."""
        return self.cursor.next_indices()

    def prepare_batch(self, indices: Tensor, step: int) -> tuple[MoleculeBatch, Tensor, tuple[Tensor, Tensor]]:
        """The molecules at `indices` on the device, their steps t_int [B] and noise (eps_x [M, 3], eps_h [M, 6])."""
        return self.batches.prepare(indices, step)

    def train_step(self) -> StepResult:
        """Take one step on the next batch (or skip it if the loss or gradient norm is not finite).

        In a data-parallel run this process computes the loss of its shard of the batch; the logged loss is the
        mean over the processes, and all of them skip, clip and step alike.
        """
        indices, epoch = self.next_indices()  # [B] the global batch
        step = self.step
        batch, t_int, noise = self.prepare_batch(shard(indices, self.world), step)  # this process's B / W molecules
        following = self.cursor.following()
        if following is not None:
            self.batches.ahead(shard(following, self.world), step + 1)
        lr = self.lr_schedule(self.molecules)
        padded = self.batches.largest(indices) if self.config.diffusion.normalization == "padded" else None
        update = self.optimisation(batch, t_int, noise, lr, step, padded_atoms=padded)
        self.step = step + 1
        self.cursor.advance()
        self.molecules += len(indices)
        self.optimisation.check_nonfinite(step, self.last_path)
        return StepResult(step=step, epoch=epoch, lr=lr, num_molecules=len(indices), **update._asdict())

    # ------------------------------------------------------------------------------------------ evaluation

    def evaluate(self, module: torch.nn.Module | None = None) -> dict[str, Any] | None:
        """Validation NLL of `module` (default: the primary EMA) on the fixed subset (1 pass, fixed seed).

        None without a validation set.
        """
        module = self.ema.module if module is None else module
        return self.checks.validation_nll(module, self.node_histogram, self.step, self.epoch)

    def sample_metrics(self) -> dict[str, Any] | None:
        """Sample molecules with the EMA weights and score them; None (with a note) when RDKit is missing."""
        return self.checks.sample_metrics(self.ema.module, self.node_histogram, self.step, self.epoch)

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint payload (see molgen.checkpoint)."""
        return trainer_state(self)

    def load_state_dict(self, payload: dict[str, Any], path: str | Path = "<memory>") -> None:
        """Restore the state saved by `state_dict` (a payload from `load_checkpoint`)."""
        restore_trainer_state(self, payload, path)

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the state to `path` (default run_dir/last.pt) atomically."""
        path = Path(path) if path is not None else self.last_path
        save_checkpoint(self.state_dict(), path)
        return path

    def load_checkpoint(self, path: str | Path) -> list[str]:
        """Continue from a checkpoint; CheckpointError if it is unreadable or its model/diffusion differ.

        Returns the other config differences (allowed, e.g. a new max_steps), as 'path: old -> new'.
        """
        payload = load_training_state(path)  # read, migrate and check the weights as load_model does
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
        max_steps = self._last_step(max_steps)
        main = self.world.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.json")
            trim_log(self.log_path, self.step)
        self.stop.requested = False
        deadline = None if time_limit is None else time.monotonic() + time_limit
        with self.stop.handling(), self.notes.redirect(), LogFile(self.log_path, main) as log_file:
            out_of_time, saved_at = self._steps(max_steps, deadline, log_file)
            self._check_replicas()
            if main and saved_at != self.step:
                self.save_checkpoint()
        if self.stop.requested:
            self._note(f"interrupted at step {self.step}: state saved to {self.last_path}")
        elif out_of_time:
            self._note(f"time limit of {time_limit:g} s reached at step {self.step}: state saved to {self.last_path}")
        end = self.lr_schedule.cooldown_end()
        if main and end is not None and self.molecules >= end and not (self.stop.requested or out_of_time):
            finish_cooldown(self)
        return RunResult(step=self.step, interrupted=self.stop.requested, checkpoint=self.last_path,
                         best_nll=self.best_nll, metrics=list(self.metrics), out_of_time=out_of_time)

    def _steps(self, max_steps: int, deadline: float | None, log_file: LogFile) -> tuple[bool, int]:
        """Steps with their log rows, checks and saves until `max_steps`, a stop request or the deadline.

        Returns whether the deadline stopped them, and the step last saved (-1: none).
        """
        window: list[tuple[StepResult, float]] = []
        out_of_time, saved_at = False, -1
        bar = self.notes.bar(max_steps, self.step)
        try:
            while self.step < max_steps:
                self.stop.requested, out_of_time = any_process(
                    [self.stop.requested, deadline is not None and time.monotonic() >= deadline],
                    self.world, self.device)
                if self.stop.requested or out_of_time:
                    break
                start = time.perf_counter()
                result = self.train_step()
                window.append((result, time.perf_counter() - start))
                self.notes.stepped(bar, *window[-1])
                if self.step % self.config.train.log_every == 0:
                    self._write_train_row(log_file, window)
                    window = []
                if self._after_step(log_file):
                    saved_at = self.step
        finally:
            bar.close()
            self.batches.close()
        if window:
            self._write_train_row(log_file, window)
        return out_of_time, saved_at

    def _after_step(self, log_file: LogFile) -> bool:
        """Evaluate, sample, check the replicas and save when due; whether last.pt was written.

        A better validation NLL saves at once (and copies last.pt to best.pt); the periodic save waits while steps
        are skipped as non-finite, to keep last.pt at a good step.
        """
        tc, main = self.config.train, self.world.is_main
        improved = False
        if main and tc.eval_every and self.step % tc.eval_every == 0 and self.valid_set is not None:
            improved = self._validate(log_file)
        if main and tc.sample_every and self.step % tc.sample_every == 0:
            self._sample(log_file)
        due = self.step % tc.checkpoint_every == 0
        if due:
            self._check_replicas()
        save = main and (improved or (due and self.consecutive_nonfinite == 0))
        if save:
            self.save_checkpoint()
        if improved:
            copy_checkpoint(self.last_path, self.best_path)
        return save

    def _validate(self, log_file: LogFile) -> bool:
        """Evaluate, log and note the validation NLL; whether it is the best yet."""
        record = self.evaluate()
        self._record(record, log_file)
        self.notes.evaluation(record)
        nll = record["val_nll"]
        improved = math.isfinite(nll) and (self.best_nll is None or nll < self.best_nll)
        if improved:
            self.best_nll = nll
        return improved

    def _sample(self, log_file: LogFile) -> None:
        """Sample, score, log and note (nothing without RDKit)."""
        record = self.sample_metrics()
        if record is not None:
            self._record(record, log_file)
            self.notes.samples(record)

    # ------------------------------------------------------------------------------------------ helpers

    def _last_step(self, max_steps: int | None) -> int:
        """The step to stop at: `max_steps` if given; else where a cooldown branch ends, or train.max_steps."""
        end = self.lr_schedule.cooldown_end()
        if end is None or max_steps is not None:
            return self.config.train.max_steps if max_steps is None else max_steps
        return self.step + max(-(-(end - self.molecules) // self.config.data.batch_size), 0)  # ceil

    def _note(self, message: str) -> None:
        """Tell the user (process 0 only): above the progress bar, else through the log."""
        self.notes.write(message)

    def _record(self, record: dict[str, Any], log_file: LogFile) -> None:
        """Keep an eval or sample record in the metrics (and so in checkpoints) and log it."""
        self.metrics.append(record)
        log_file.write(record)

    def _write_train_row(self, log_file: LogFile, window: list[tuple[StepResult, float]]) -> None:
        """Log the steps of `window` (each with its seconds) as one row."""
        row = train_row(window, self.step)
        log_file.write(row)
        self.notes.train(row, self.molecules)

    def _check_replicas(self) -> None:
        """In a data-parallel run, check that every process holds the same weights, EMA and clipping history."""
        check_replicas([self.model, self.ema.module], self.clipper.history, self.step, self.world, self.device)
