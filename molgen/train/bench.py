"""Training throughput of the trainer itself: molecules/s and peak memory per model and batch size, in a fixed time.

Each case builds a `Trainer` for the run config at one batch size (evaluations and sampling off, nothing written),
takes one untimed step (allocation, autotuning), then times steps until its share of the time left is spent (the
set-up counts against the budget, so the whole benchmark takes about `seconds`, plus one case's set-up and two
steps). A case that would start after `seconds` is skipped (the first always runs): on a CPU one step at a large
batch can take longer than the whole budget.
`scripts/gpu_train.sh --bench SECONDS` prints the table before training; the recorded tables live in eval/.
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass

import torch

from molgen.config import ModelConfig, RunConfig


@dataclass(frozen=True)
class BenchRow:
    """One case: the model, its size, the batch, the precision and what it reached."""

    model: str
    parameters: int
    batch_size: int
    precision: str
    steps: int
    molecules_per_s: float
    peak_memory_mib: float


def device_description(device: torch.device) -> str:
    """The device's name: the GPU's, or the CPU's capability and thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return f"CPU {capability}, {threads} thread{'' if threads == 1 else 's'} (torch {torch.__version__})"


def _peak_memory_mib(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset, or the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _time_case(config: RunConfig, train_set, node_histogram, until: float) -> BenchRow:
    """Molecules/s of the trainer for `config`, timing steps (after one untimed) until time.monotonic() >= `until`."""
    from molgen.train.loop import Trainer

    trainer = Trainer(config, train_set, None, node_histogram=node_histogram)
    device = trainer.device
    trainer.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    steps, molecules, start = 0, 0, time.perf_counter()
    while steps < 1 or time.monotonic() < until:
        molecules += trainer.train_step().num_molecules  # the loss is read back each step: the step has finished
        steps += 1
    elapsed = time.perf_counter() - start
    parameters = sum(p.numel() for p in trainer.model.parameters())
    precision = getattr(trainer, "precision", "fp32")
    return BenchRow(config.model.name, parameters, config.data.batch_size, precision, steps, molecules / elapsed,
                    _peak_memory_mib(device))


def batches_that_fit(batch_sizes: list[int], num_molecules: int) -> list[int]:
    """The batch sizes capped at the training set's `num_molecules` (no batch is larger than the data), each once,
    in order: [256, 1024, 2048] on 2,000 molecules -> [256, 1024, 2000]."""
    return list(dict.fromkeys(min(b, num_molecules) for b in batch_sizes))


def benchmark(config: RunConfig, train_set, node_histogram, batch_sizes: list[int], egnn_batch_size: int | None,
              seconds: float) -> list[BenchRow]:
    """Time the config's model at each batch size and EDM's EGNN at `egnn_batch_size` (None: skip), in `seconds`;
    the rows of the cases that ran, in that order (those left when the time is spent are skipped)."""
    with tempfile.TemporaryDirectory() as scratch:
        base = config.replace({"run_dir": scratch, "train.eval_every": 0, "train.sample_every": 0,
                               "train.cooldown_molecules": 0, "data.max_train_molecules": None})
        cases = [base.replace({"data.batch_size": b}) for b in batch_sizes]
        if egnn_batch_size is not None:
            egnn = ModelConfig(name="egnn").to_dict()
            cases.append(base.replace({"data.batch_size": egnn_batch_size, "model": egnn}))
        deadline, rows = time.monotonic() + seconds, []
        for left, case in zip(range(len(cases), 0, -1), cases):  # each case: its share of the time left
            if rows and time.monotonic() >= deadline:
                break
            until = time.monotonic() + max(deadline - time.monotonic(), 0.0) / left
            rows.append(_time_case(case, train_set, node_histogram, until))
        return rows


def format_table(rows: list[BenchRow], device: torch.device) -> str:
    """The rows as a Markdown table under a line naming the device."""
    lines = [f"device: {device_description(device)}", "",
             "| model | parameters | batch | precision | steps | molecules/s | peak memory (MiB) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.parameters:,} | {r.batch_size} | {r.precision} | {r.steps} | "
              f"{r.molecules_per_s:,.0f} | {r.peak_memory_mib:,.0f} |" for r in rows]
    return "\n".join(lines)
