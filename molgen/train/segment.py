"""One time-boxed training segment for a borrowed GPU: benchmark, main branch, cooldown branch, in one process.

    python -m molgen.train.segment --config CONFIG --data EXPORT --seconds 420 --batch 1024 --bench 45

1. `--bench S` (optional, <= 60): the trainer's molecules/s and peak memory for the config at `--bench-batches`
   (each capped at the training set's size) and EDM's EGNN at the first of them (molgen.train.bench; the cases
   that S leaves no time for are skipped), printed and written to RUN_DIR/bench.md.
2. The main branch: resumes `--resume` or RUN_DIR/last.pt (else starts the run), at `--batch` molecules per step
   with the learning rate scaled by Adam's square-root rule (or `--lr`) and a re-warm-up of `--rewarmup`
   molecules when either changed, and trains for the first (1 - `--cooldown-share`) of `--seconds`; last.pt.
3. The cooldown branch (molgen.train.cooldown) in the rest of the budget, into `--cooldown-dir`: from last.pt,
   over min(`--cooldown-fraction` x molecules seen, what the measured molecules/s allow), ending with shipped.pt.

Needs torch, numpy, tqdm and PyYAML and a data export (`molgen data export`): no RDKit, no qm9pack.
`scripts/gpu_train.sh` wraps it (time-out backstop, copying the small files back).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from molgen.config import RunConfig, load_config, parse_override
from molgen.errors import MolgenError
from molgen.train.schedule import sqrt_scaled_lr

SAFETY = 0.8  # the cooldown length assumes this share of the main branch's molecules/s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m molgen.train.segment", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="run config (YAML/JSON)")
    parser.add_argument("--data", type=Path, required=True, help="data export (molgen data export)")
    parser.add_argument("--run-dir", type=Path, default=None, help="main branch's run folder (default: config's)")
    parser.add_argument("--resume", type=Path, default=None, help="checkpoint to resume (default: RUN_DIR/last.pt)")
    parser.add_argument("--cooldown-dir", type=Path, default=None, help="default: RUN_DIR_cooldown")
    parser.add_argument("--device", default="cuda", help="train.device")
    parser.add_argument("--seconds", type=float, default=420, help="main and cooldown branches together")
    parser.add_argument("--batch", type=int, default=None, help="molecules per step (default: the config's)")
    parser.add_argument("--lr", type=float, default=None, help="peak lr (default: the config's, sqrt-scaled)")
    parser.add_argument("--rewarmup", type=int, default=None, metavar="MOLECULES",
                        help="re-warm-up after a change of lr or batch (default: 32 batches)")
    parser.add_argument("--cooldown-share", type=float, default=0.2, help="share of --seconds (0: no cooldown)")
    parser.add_argument("--cooldown-fraction", type=float, default=0.125,
                        help="cooldown length as a fraction of the molecules seen, at most")
    parser.add_argument("--bench", type=float, default=0, metavar="SECONDS", help="benchmark first (<= 60; 0: no)")
    parser.add_argument("--bench-batches", default="256,1024,2048", help="batch sizes to benchmark")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    return parser


def _check(args: argparse.Namespace) -> None:
    """ValueError naming the argument for a value out of range."""
    if not 0 < args.seconds:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if not 0 <= args.cooldown_share < 1 or not 0 < args.cooldown_fraction <= 1:
        raise ValueError("--cooldown-share must lie in [0, 1) and --cooldown-fraction in (0, 1]")
    if not 0 <= args.bench <= 60:
        raise ValueError(f"--bench must lie in [0, 60] seconds, got {args.bench}")
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")


def main_config(args: argparse.Namespace) -> RunConfig:
    """The config with the segment's device, run folder, batch size, scaled lr and re-warm-up."""
    config = load_config(args.config, dict(parse_override(text) for text in args.overrides))
    batch = args.batch or config.data.batch_size
    lr = args.lr if args.lr is not None else sqrt_scaled_lr(config.train.lr, batch, config.data.batch_size)
    rewarmup = args.rewarmup if args.rewarmup is not None else 32 * batch
    return config.replace({"train.device": args.device, "data.batch_size": batch, "train.lr": lr,
                           "train.rewarmup_molecules": rewarmup, "train.cooldown_molecules": 0,
                           "run_dir": str(args.run_dir or config.run_dir)})


def _run_branch(config: RunConfig, export, resume: Path | None, seconds: float):
    """Train `config` (resumed from `resume` if given) for `seconds`; the trainer and the molecules/s reached."""
    from molgen.train.loop import Trainer

    trainer = Trainer(config, export.splits["train"], export.splits["valid"], node_histogram=export.node_histogram)
    if resume is not None:
        trainer.load_checkpoint(resume)
        print(f"resuming from {resume} at step {trainer.step:,} ({trainer.molecules:,} molecules seen)", flush=True)
    print(f"{config.model.name} on {trainer.device}, {getattr(trainer, 'precision', 'fp32')}: batch "
          f"{config.data.batch_size}, lr {config.train.lr:.3g}, run folder {config.run_dir}", flush=True)
    molecules, start = trainer.molecules, time.perf_counter()
    result = trainer.run(time_limit=seconds)
    rate = (trainer.molecules - molecules) / max(time.perf_counter() - start, 1e-9)
    ending = "time limit reached" if result.out_of_time else "interrupted" if result.interrupted else "finished"
    print(f"{ending} at step {result.step:,}: {rate:,.0f} molecules/s, {trainer.molecules:,} molecules seen, "
          f"state saved to {result.checkpoint}", flush=True)
    if result.interrupted:
        raise KeyboardInterrupt
    return trainer, rate


def cooldown_length(molecules_seen: int, rate: float, seconds: float, fraction: float, batch: int) -> int:
    """Molecules of the cooldown: `fraction` of those seen, at most what `rate` allows in `seconds`; whole batches."""
    molecules = min(fraction * molecules_seen, SAFETY * rate * seconds)
    return max(int(molecules // batch), 1) * batch


def _bench(args: argparse.Namespace, config: RunConfig, export) -> None:
    """Print the benchmark table and write it to RUN_DIR/bench.md; batches larger than the training set are capped
    at its size, with a line saying so."""
    from molgen.device import resolve_device
    from molgen.train.bench import batches_that_fit, benchmark, format_table

    asked, train_size = [int(b) for b in args.bench_batches.split(",") if b], len(export.splits["train"])
    batches = batches_that_fit(asked, train_size)
    if batches != asked:
        print(f"benchmark: the training set has {train_size:,} molecules, so the batches {asked} become {batches}",
              flush=True)
    rows = benchmark(config, export.splits["train"], export.node_histogram, batches, batches[0], args.bench)
    cases = [f"{config.model.name} {b}" for b in batches] + [f"egnn {batches[0]}"]
    if len(rows) < len(cases):
        print(f"benchmark: {args.bench:g} s spent; skipped {', '.join(cases[len(rows):])}", flush=True)
    table = format_table(rows, resolve_device(config.train.device))
    print(table, flush=True)
    Path(config.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.run_dir) / "bench.md").write_text(table + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the segment; a user error prints one line and exits with status 2, an interruption with 130."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("molgen.train").setLevel(logging.INFO)
    try:
        _check(args)
        segment(args)
    except (ValueError, MolgenError) as err:
        print(f"segment: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def segment(args: argparse.Namespace) -> None:
    """Benchmark, main branch, cooldown branch (see the module docstring)."""
    from molgen.data.export import load_export
    from molgen.train.batches import training_subset

    config, export = main_config(args), load_export(args.data)
    training_subset(export.splits["train"], config.data.max_train_molecules, config.data.batch_size, 1)  # fail early
    if args.bench:
        _bench(args, config, export)
    last = Path(config.run_dir) / "last.pt"
    resume = args.resume or (last if last.exists() else None)
    main_seconds = args.seconds * (1 - args.cooldown_share)
    trainer, rate = _run_branch(config, export, resume, main_seconds)
    if trainer.step == 0 or args.cooldown_share == 0:
        return
    seconds = args.seconds - main_seconds
    length = cooldown_length(trainer.molecules, rate, seconds, args.cooldown_fraction, config.data.batch_size)
    cooldown_dir = args.cooldown_dir or Path(f"{config.run_dir}_cooldown")
    del trainer
    cooldown = config.replace({"run_dir": str(cooldown_dir), "train.cooldown_molecules": length})
    print(f"cooldown branch: {length:,} molecules into {cooldown_dir}", flush=True)
    trainer, _ = _run_branch(cooldown, export, last, seconds / SAFETY)
    shipped = cooldown_dir / "shipped.pt"
    print(f"shipped: {shipped}" if shipped.exists() else "the cooldown did not finish in time: nothing shipped",
          flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
