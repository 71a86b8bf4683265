"""The `molgen` command: `molgen data ...`, `molgen sample ...`, `molgen evaluate ...`, `molgen train ...`,
`molgen grow ...`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from molgen import __version__
from molgen.choices import PRECISIONS
from molgen.cli_figures import add_figure_arguments, check_figure_arguments, evaluate_figures, read_files
from molgen.cli_grow import add_grow_parser, grow_command
from molgen.cli_help import HelpFormatter, Parser
from molgen.cli_report import add_report_option, write_evaluation_report
from molgen.cli_sampling import add_checkpoint_arguments, add_sample_parser, evaluate_checkpoint, sample_command
from molgen.errors import MolgenError
from molgen.interrupts import Interrupted, terminate_interrupts
from molgen.outputs import check_output_file, check_output_folder, writing


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="molgen",
        description="3D molecule generation with E(3) equivariant diffusion (EDM) on QM9.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"molgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_parser(commands)
    add_sample_parser(commands)
    _add_evaluate_parser(commands)
    _add_train_parser(commands)
    add_grow_parser(commands)
    return parser


def _add_data_parser(commands: argparse._SubParsersAction) -> None:
    """`molgen data prepare` and `molgen data export`."""
    data = commands.add_parser("data", help="prepare and describe the QM9 data (EDM's split)",
                               formatter_class=HelpFormatter)
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prepare = data_commands.add_parser("prepare", help="parse the qm9pack CSVs into the cache and print statistics",
                                       formatter_class=HelpFormatter)
    prepare.add_argument("--rebuild", action="store_true", help="rebuild the cache even if it is intact")
    prepare.add_argument("--cache-dir", type=Path, default=None,
                         help="cache folder (default: $MOLGEN_CACHE_DIR or ~/.cache/molgen)")
    export = data_commands.add_parser(
        "export", help="write the train and valid splits as one compact file that `molgen train --data` reads "
                       "without qm9pack", formatter_class=HelpFormatter)
    export.add_argument("path", type=Path, help="the .npz file to write (e.g. exports/qm9_train_valid.npz)")
    export.add_argument("--max-molecules", type=int, default=None, metavar="N",
                        help="only the first N molecules of each split (small test runs)")
    export.add_argument("--cache-dir", type=Path, default=None,
                        help="cache folder (default: $MOLGEN_CACHE_DIR or ~/.cache/molgen)")


def _add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """`molgen evaluate`: files, a QM9 split or a checkpoint."""
    evaluate = commands.add_parser(
        "evaluate", help="score molecules (XYZ/SDF files, a QM9 split, or samples of a checkpoint) with EDM's metrics",
        formatter_class=HelpFormatter,
        description="Atom and molecule stability, RDKit validity, uniqueness and novelty exactly as EDM defines them, "
                    "then connectivity, MiDi's distribution distances to the QM9 test split, MMFF94 strain and, with "
                    "--posebusters, PoseBusters' mol checks. With --checkpoint: EDM's protocol on N samples (95% "
                    "confidence intervals) and the test-split NLL of the EMA weights.",
    )
    evaluate.add_argument("files", nargs="*", type=Path, help="XYZ or SDF files of molecules")
    evaluate.add_argument("--qm9-split", choices=("train", "valid", "test"), default=None,
                          help="score the molecules of a QM9 split instead of files")
    evaluate.add_argument("--novelty", choices=("auto", "yes", "no"), default="auto",
                          help="score novelty against EDM's training SMILES (auto: when the QM9 data is installed)")
    evaluate.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the metrics as JSON")
    add_report_option(evaluate)
    evaluate.add_argument("--cache-dir", type=Path, default=None, help="QM9 cache folder")
    add_figure_arguments(evaluate)
    add_checkpoint_arguments(evaluate)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    """`molgen train`."""
    train = commands.add_parser(
        "train", help="train a denoiser with EDM's diffusion on QM9 (resumable)",
        formatter_class=HelpFormatter,
        description="Train from a YAML/JSON run config (see configs/). Writes RUN_DIR/config.json, log.csv, last.pt "
                    "(every train.checkpoint_every steps, at the end and on Ctrl-C/SIGTERM) and best.pt (lowest "
                    "validation NLL of the EMA weights).",
    )
    train.add_argument("config", type=Path, help="run config: YAML or JSON (e.g. configs/qm9_ponita_cpu.yaml, or a "
                                                 "run's config.json)")
    train.add_argument("--resume", nargs="?", const="last", default=None, metavar="PATH",
                       help="continue the run from RUN_DIR/last.pt, or from the checkpoint PATH")
    train.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    train.add_argument("--run-dir", type=Path, default=None, help="override run_dir")
    train.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="override train.precision: auto = bf16 autocast where the hardware has native bf16 "
                            "(CUDA, AVX-512 bf16 or AMX CPUs), else fp32")
    train.add_argument("--compile", action="store_const", const=True, default=None,
                       help="set train.compile: torch.compile PONITA's network in the training step (needs g++ or "
                            "clang++)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override a config field, e.g. --set train.lr=3e-4 --set model.config.hidden=128")
    train.add_argument("--data", type=Path, default=None, metavar="EXPORT",
                       help="train from a data export (`molgen data export`) instead of the QM9 cache")
    train.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                       help="stop after the step during which this many seconds of training have passed, saving "
                            "last.pt (continue with --resume)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")


def _prepare(args: argparse.Namespace) -> None:
    from molgen.data.qm9 import cache_path, load_qm9_arrays, load_splits
    from molgen.data.stats import atom_type_counts, node_count_histogram
    from molgen.elements import ELEMENTS

    if args.rebuild:
        load_qm9_arrays(args.cache_dir, rebuild=True)
    splits = load_splits(args.cache_dir)  # an intact cache is only read: a read-only one serves
    print(f"QM9 cache: {cache_path(args.cache_dir)}")
    print("split sizes: " + ", ".join(f"{name} {len(ds):,}" for name, ds in splits.items()))
    histogram = node_count_histogram(splits["train"])
    print("train atom counts: " + ", ".join(f"{n}:{int(c)}" for n, c in enumerate(histogram) if c))
    counts = atom_type_counts(splits["train"])
    total = int(counts.sum())
    print("train atom types: " + ", ".join(f"{e} {int(c):,} ({100 * int(c) / total:.2f}%)"
                                          for e, c in zip(ELEMENTS, counts)))


def _export(args: argparse.Namespace) -> None:
    from molgen.data.export import export_splits
    from molgen.data.qm9 import load_splits

    check_output_file(args.path)
    splits = load_splits(args.cache_dir)
    with writing(args.path):
        counts = export_splits(args.path, splits, args.max_molecules)
    print(f"wrote {args.path} ({args.path.stat().st_size / 2**20:.1f} MiB): train {counts['train']:,} and valid "
          f"{counts['valid']:,} molecules")


def _data(args: argparse.Namespace) -> None:
    {"prepare": _prepare, "export": _export}[args.data_command](args)


def _training_smiles(args: argparse.Namespace) -> set[str] | None:
    """EDM's training SMILES, or None when novelty is not wanted or the data is not installed."""
    if args.novelty == "no":
        return None
    from molgen.chem.reference import training_smiles
    from molgen.data.qm9 import CacheError, QM9Dataset

    try:
        return training_smiles(QM9Dataset("train", args.cache_dir), args.cache_dir)
    except CacheError as err:  # a cache folder that is wrong is the user's to fix, also with --novelty auto
        raise CacheError(f"{err}; --novelty no skips novelty") from None
    except MolgenError as err:
        if args.novelty == "yes":
            raise
        print(f"novelty not scored: {err}", file=sys.stderr)
        return None


def _check_cache_first(args: argparse.Namespace) -> None:
    """`evaluate --checkpoint` reads the QM9 data after sampling: a cache folder that cannot serve fails now."""
    from molgen.chem.reference import check_training_smiles
    from molgen.data.qm9 import CacheError, check_cache

    if args.novelty != "no" or args.nll_passes:
        check_cache(args.cache_dir)
    if args.novelty != "no":
        try:
            check_training_smiles(args.cache_dir)
        except CacheError as err:
            raise CacheError(f"{err}; --novelty no skips novelty") from None


def _evaluate(args: argparse.Namespace) -> None:
    from molgen.chem.figures import format_figures

    if (bool(args.files) + bool(args.qm9_split) + (args.checkpoint is not None)) != 1:
        raise MolgenError("give molecule files, --qm9-split or --checkpoint: exactly one of them")
    for path in (args.json, args.report):
        if path is not None:
            check_output_file(path)
    check_figure_arguments(args)
    if args.checkpoint is not None:
        _check_cache_first(args)
        evaluate_checkpoint(args, lambda: _training_smiles(args), args.json, args.cache_dir)
        return
    if args.qm9_split:
        from molgen.data.qm9 import QM9Dataset

        molecules, orders = QM9Dataset(args.qm9_split, args.cache_dir).molecules(), None
        source = f"QM9 {args.qm9_split} split"
    else:
        molecules, orders = read_files(args)
        source = ", ".join(str(p) for p in args.files)
    training_smiles = _training_smiles(args)
    scored, figures, rows = evaluate_figures(molecules, orders, args)
    metrics = scored.metrics(training_smiles)
    print(f"{len(molecules):,} molecules from {source}, " + ("EDM's bonds" if args.bonds == "edm" else "the files' bonds"))
    print(metrics.format_table())
    print(format_figures(figures))
    if args.json is not None:
        from molgen.atomic import atomic_write

        with writing(args.json), atomic_write(args.json) as handle:
            json.dump({"source": source, "bonds": args.bonds, **metrics.to_dict(), **figures}, handle, indent=2)
        print(f"metrics written to {args.json}")
    if args.report is not None:
        with writing(args.report):
            write_evaluation_report(args.report, molecules, source, {**metrics.to_dict(), **figures}, rows, scored.orders,
                                    "EDM's distance rule" if args.bonds == "edm" else "the files' own bond blocks")
        print(f"report written to {args.report}")


def _config_overrides(args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    """The dotted-path overrides of `molgen train`'s options, and the option that set each (for its errors)."""
    from molgen.config import parse_override

    overrides, options = {}, {}
    for text in args.overrides:
        key, value = parse_override(text)
        overrides[key], options[key] = value, f"--set {text}"
    flags = {"train.max_steps": ("--max-steps", args.max_steps), "run_dir": ("--run-dir", args.run_dir),
             "train.precision": ("--precision", args.precision), "train.compile": ("--compile", args.compile)}
    for key, (flag, value) in flags.items():
        if value is not None:
            overrides[key], options[key] = value, f"{flag} {value}"
    return overrides, options


def _train(args: argparse.Namespace) -> None:
    from molgen.config import load_config

    logging.getLogger("molgen.train").setLevel(logging.INFO)
    try:
        config = load_config(args.config, *_config_overrides(args))
    except ValueError as err:
        raise MolgenError(str(err)) from None
    run_dir = Path(config.run_dir)
    resume = None if args.resume is None else run_dir / "last.pt" if args.resume == "last" else Path(args.resume)
    if resume is None and (run_dir / "last.pt").exists():
        raise MolgenError(f"{run_dir} already holds a run (last.pt): pass --resume to continue it, or choose "
                          "another --run-dir")
    if args.time_limit is not None and not args.time_limit > 0:
        raise MolgenError(f"--time-limit must be a number of seconds > 0, got {args.time_limit}")
    check_output_folder(run_dir)

    from molgen.train.distributed import World, process_group
    from molgen.device import resolve_device

    world = World.from_environment()  # torchrun's processes; one process otherwise
    if not world.is_main:
        logging.getLogger("molgen.train").setLevel(logging.ERROR)
    with process_group(world, world.device(resolve_device(config.train.device))):
        _train_process(args, config, world, resume)


def _train_process(args: argparse.Namespace, config, world, resume: Path | None) -> None:
    """Train in this process (one of torchrun's, or alone); only process 0 prints."""
    from molgen.data.stats import node_count_histogram
    from molgen.precision import describe_compute
    from molgen.train.loop import Trainer

    def say(message: str) -> None:
        if world.is_main:
            print(message)

    from molgen.property.training import is_property_run, property_trainer

    progress = not args.no_progress and world.is_main
    if is_property_run(config):  # a property regressor (molgen.property)
        trainer = property_trainer(config, args.data, progress=progress, world=world)
    elif args.data is not None:
        from molgen.data.export import load_export

        export = load_export(args.data)
        trainer = Trainer(config, export.splits["train"], export.splits["valid"],
                          node_histogram=export.node_histogram, progress=progress, world=world)
    else:
        from molgen.data.qm9 import load_splits

        splits = load_splits(Path(config.data.cache_dir) if config.data.cache_dir else None)
        trainer = Trainer(config, splits["train"], splits["valid"],
                          node_histogram=node_count_histogram(splits["train"]), progress=progress, world=world)
    if resume is not None:
        changed = trainer.load_checkpoint(resume)
        say(f"resuming from {resume} at step {trainer.step:,} (epoch {trainer.epoch})"
            + (f"; config changes: {'; '.join(changed)}" if changed else ""))
    parameters = sum(p.numel() for p in trainer.model.parameters())
    processes = f" in each of {world.size} processes" if world.distributed else ""
    say(f"{config.model.name}: {parameters:,} parameters on {describe_compute(trainer.device, trainer.precision)}"
        f"{processes}; run folder "
        f"{config.run_dir}; {len(trainer.train_set):,} training molecules, batch {config.data.batch_size}")
    with writing(config.run_dir):
        result = trainer.run(time_limit=args.time_limit)
    if result.interrupted:
        say(f"stopped at step {result.step:,}, state saved to {result.checkpoint}; continue with the same command "
            "and --resume")
        raise Interrupted(trainer.stop_signal or signal.SIGINT)
    if result.out_of_time:
        say(f"time limit reached at step {result.step:,}, state saved to {result.checkpoint}; continue with the same "
            "command and --resume")
        return
    best = "" if result.best_nll is None else f"; best validation NLL {result.best_nll:.3f}"
    best += f" ({trainer.best_path})" if best and trainer.best_path.exists() else ""
    say(f"finished at step {result.step:,}: {result.checkpoint}{best}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `molgen` command; user errors print one line and exit with status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    handlers = {"data": _data, "sample": sample_command, "evaluate": _evaluate, "train": _train, "grow": grow_command}
    try:
        with terminate_interrupts():  # SIGTERM cleans up as Ctrl-C does (exit 143)
            handlers[args.command](args)
    except MolgenError as err:
        print(f"molgen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print("molgen: interrupted", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
