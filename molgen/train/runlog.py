"""The record of a run: run_dir/log.csv (a row per `log_every` steps, one per evaluation and per sampling) and
the messages to the user (above the progress bar, else through the log), from process 0 only."""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from molgen.atomic import atomic_write
from molgen.train.step import StepResult

log = logging.getLogger(__name__)

REPORT_SECONDS = 30.0  # without a progress bar, a line with the molecules/s at most this often
LOG_COLUMNS = (
    "kind", "step", "epoch", "loss", "grad_norm", "clipped", "skipped", "lr", "mol_per_s",
    "val_nll", "val_nll_se", "atom_stable", "mol_stable", "validity", "uniqueness", "seconds", "time",
)


class LogFile:
    """log.csv opened for appending (with its header when empty) in process 0; elsewhere a sink."""

    def __init__(self, path: Path, main: bool) -> None:
        self._handle = open(path if main else os.devnull, "a", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        if self._handle.tell() == 0:
            self._writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        """Append `row` (its columns of LOG_COLUMNS) with the time, and flush."""
        self._writer.writerow({**_formatted(row), "time": f"{time.time():.0f}"})
        self._handle.flush()

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()


def train_row(window: list[tuple[StepResult, float]], step: int) -> dict[str, Any]:
    """The log row of the steps in `window` (each with its seconds), ending at `step`: mean loss and gradient norm
    of the steps not skipped, clipped and skipped counts, the last learning rate, molecules/s."""
    results = [r for r, _ in window]
    finite = [r for r in results if not r.skipped]
    molecules, seconds = sum(r.num_molecules for r in results), sum(s for _, s in window)
    return {
        "kind": "train", "step": step, "epoch": results[-1].epoch,
        "loss": sum(r.loss for r in finite) / len(finite) if finite else math.nan,
        "grad_norm": sum(r.grad_norm for r in finite) / len(finite) if finite else math.nan,
        "clipped": sum(r.clipped for r in results), "skipped": sum(r.skipped for r in results),
        "lr": results[-1].lr, "mol_per_s": molecules / seconds if seconds > 0 else math.nan,
        "seconds": seconds,
    }


def trim_log(path: Path, step: int) -> None:
    """Drop log rows from steps after `step` (a run killed after its last checkpoint); rewrite an old header."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [row for row in rows if _int_or_none(row.get("step")) is not None and int(row["step"]) <= step]
    header_ok = path.read_text().split("\n", 1)[0].strip() == ",".join(LOG_COLUMNS)
    if len(kept) == len(rows) and header_ok:
        return
    with atomic_write(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _formatted(row: dict[str, Any]) -> dict[str, Any]:
    """Floats with enough digits but not 17."""
    return {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}


class Notes:
    """Messages to the user from process 0: above the progress bar with `progress`, else through the log."""

    def __init__(self, main: bool, progress: bool) -> None:
        self.main, self.progress = main, progress
        self._reported_at = -math.inf

    def write(self, message: str) -> None:
        """Tell the user `message` (in process 0)."""
        if not self.main:
            return
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(message)
        else:
            log.info(message)

    def bar(self, total: int, initial: int):
        """The progress bar of the steps (disabled without `progress` and outside process 0)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                    disable=not (self.progress and self.main), desc="train")

    def redirect(self):
        """A context in which log messages go above the progress bar (with `progress`)."""
        if not self.progress:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def stepped(self, bar, result: StepResult, seconds: float) -> None:
        """Move the bar on by one step that took `seconds`, showing its loss and molecules/s."""
        bar.update(1)
        if self.progress:
            bar.set_postfix(loss=f"{result.loss:.4f}", mol_s=f"{result.num_molecules / seconds:.1f}", refresh=False)

    def train(self, row: dict[str, Any], molecules: int) -> None:
        """Without a progress bar, at most every REPORT_SECONDS: the loss, molecules/s, lr and molecules seen."""
        if not self.progress and time.monotonic() - self._reported_at >= REPORT_SECONDS:
            self._reported_at = time.monotonic()
            self.write(f"step {row['step']}: loss {row['loss']:.4f}, {row['mol_per_s']:.0f} molecules/s, "
                       f"lr {row['lr']:.3g}, {molecules:,} molecules seen")

    def evaluation(self, record: dict[str, Any]) -> None:
        """The validation NLL of an eval record."""
        self.write(f"step {record['step']}: validation NLL {record['val_nll']:.3f} ± {record['val_nll_se']:.3f} "
                   f"(EMA, {record['num_molecules']} molecules, {record['seconds']:.0f} s)")

    def samples(self, record: dict[str, Any]) -> None:
        """The scores of a sample record."""
        self.write(f"step {record['step']}: {record.get('num_molecules', 0)} EMA samples: atom stable "
                   f"{record['atom_stable']:.3f}, mol stable {record['mol_stable']:.3f}, valid "
                   f"{record['validity']:.3f} ({record['seconds']:.0f} s)")
