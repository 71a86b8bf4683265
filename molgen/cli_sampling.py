"""`molgen sample` and `molgen evaluate --checkpoint`: sampling, files, pictures and the paper protocol."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from molgen.choices import (
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    MAX_RESAMPLE,
    PRECISIONS,
    SAMPLER_TABLE,
    SAMPLERS,
    seed_problem,
)
from molgen.cli_figures import evaluate_figures, write_sample_tables
from molgen.cli_help import HelpFormatter
from molgen.cli_report import add_no_report_option, write_sample_report
from molgen.errors import DataError
from molgen.outputs import writing
from molgen.property.targets import add_target_arguments, targets_from_arguments
from molgen.settings import samplers_with

GRID_COLUMNS = 6
SAMPLE_FILES = ("molecules.sdf", "molecules.xyz", "molecules.csv", "grid.png", "chain.png", "chain.gif", "summary.json",
                "report.html")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum (anything else gets one clear message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive, _non_negative = _at_least(1), _at_least(0)


def _seed(text: str) -> int:
    """An argparse type: a seed, an integer from 0 to 2^64 - 1 (torch's range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    problem = seed_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def add_sampling_arguments(parser: argparse.ArgumentParser, count_flag: str, count_default: int) -> None:
    """The options shared by `sample` and `evaluate --checkpoint`."""
    parser.add_argument("-n", count_flag, type=_positive, default=count_default, dest="num_molecules",
                        help="number of molecules to sample")
    parser.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                        help="; ".join(f"{name}: {spec.summary} ({spec.calls_per_step} network call"
                                       f"{'s' if spec.calls_per_step > 1 else ''} per step)"
                                       for name, spec in SAMPLER_TABLE.items()))
    parser.add_argument("--steps", type=_positive, default=None,
                        help="sampler steps (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items())
                             + ")")
    parser.add_argument("--churn", type=float, default=0.0,
                        help=f"{samplers_with('churn')} only: Karras et al.'s stochastic churn S_churn (0: the "
                             "deterministic ODE)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="random seed, 0 to 2**64 - 1 (same seed and batch size: same molecules)")
    parser.add_argument("--batch-size", type=_positive, default=100, help="molecules per network call")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 autocast where the hardware has native bf16 (CUDA, AVX-512 bf16 or AMX "
                             "CPUs), else fp32")
    parser.add_argument("--threads", type=_positive, default=None,
                        help="CPU threads (default: the cores this process may use)")
    parser.add_argument("--raw-weights", action="store_true",
                        help="use the trained weights instead of their EMA (EDM samples with the EMA)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_sample_parser(commands: argparse._SubParsersAction) -> None:
    """`molgen sample`."""
    parser = commands.add_parser(
        "sample", help="sample molecules from a checkpoint (default: the shipped QM9 model)",
        formatter_class=HelpFormatter,
        description="Sample 3D molecules and write OUT/molecules.sdf (with EDM's bonds), OUT/molecules.xyz, "
                    "OUT/grid.png (2D depictions labelled with SMILES, stable molecules framed), OUT/report.html (every "
                    "molecule in 3D, for a browser, offline) and OUT/summary.json; with --chain also the denoising "
                    "chain of the first molecule as OUT/chain.png and OUT/chain.gif.",
    )
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint file (default: $MOLGEN_CHECKPOINT or checkpoints/qm9_ponita_cpu.pt)")
    add_sampling_arguments(parser, "--num-molecules", 100)
    parser.add_argument("--num-atoms", type=_positive, default=None,
                        help="give every molecule this many atoms (only counts seen in training); default: draw "
                             "from the training histogram")
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    parser.add_argument("--grid", type=_non_negative, default=24, help="molecules in grid.png (0: no picture)")
    parser.add_argument("--chain", action="store_true", help="also draw the first molecule's denoising chain")
    parser.add_argument("--chain-frames", type=_positive, default=10, help="frames of the chain (with --chain)")
    parser.add_argument("--fix", type=Path, default=None, metavar="FRAGMENT",
                        help="grow every molecule around this fragment (.xyz or .sdf, one molecule): its atoms come "
                             "first, in its order and coordinate frame; the atom count is drawn from the training "
                             f"histogram above the fragment's size unless --num-atoms is given ({samplers_with('fix')}"
                             " sampler only)")
    parser.add_argument("--resample", type=_non_negative, default=0,
                        help="with --fix: RePaint round trips per step (each costs one more network call per step; "
                             f"at most {MAX_RESAMPLE})")
    add_no_report_option(parser)
    add_target_arguments(parser)


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The `evaluate --checkpoint` options (EDM's protocol: samples, metrics, test NLL)."""
    group = parser.add_argument_group("scoring a checkpoint (--checkpoint)")
    group.add_argument("--checkpoint", type=Path, default=None, help="sample from this checkpoint and score it")
    group.add_argument("--nll-passes", type=_non_negative, default=1,
                       help="passes of the test-split NLL (EDM reports 5; 0 skips it)")
    group.add_argument("--nll-molecules", type=_positive, default=None,
                       help="NLL on the first N test molecules only (default: the whole test split, as EDM)")
    add_sampling_arguments(group, "--num-samples", 1000)


def _settings(args: argparse.Namespace):
    """The `SampleSettings` the options ask for."""
    from molgen.settings import SampleSettings

    return SampleSettings(num_molecules=args.num_molecules, sampler=args.sampler, steps=args.steps, seed=args.seed,
                          num_atoms=getattr(args, "num_atoms", None), batch_size=args.batch_size, device=args.device,
                          use_ema=not args.raw_weights, precision=args.precision, threads=args.threads,
                          resample=getattr(args, "resample", 0), churn=args.churn, **targets_from_arguments(args))


def _sampled(args: argparse.Namespace, chain_frames: int = 0):
    """Load the checkpoint and sample as the arguments say; returns (LoadedModel, Samples)."""
    settings = _settings(args)
    settings.check()  # before torch is imported
    from molgen.chem.io import read_fragment
    from molgen.sampling import generate, load_for_sampling

    fragment = read_fragment(args.fix) if getattr(args, "fix", None) is not None else None
    loaded = load_for_sampling(args.checkpoint, settings)
    return loaded, generate(loaded, settings, progress=not args.no_progress, chain_frames=chain_frames,
                            fragment=fragment)


def _describe(samples) -> str:
    s = samples.settings
    weights = "EMA weights" if s.use_ema else "raw weights"
    return (f"{len(samples.molecules):,} molecules from {samples.checkpoint} (step {samples.checkpoint_step:,}, "
            f"{weights}), {s.sampler} sampler, {s.resolved_steps} steps, seed {s.seed}: "
            f"{samples.seconds:.1f} s ({samples.seconds_per_molecule:.3f} s per molecule) on {samples.compute}")


def sample_command(args: argparse.Namespace) -> None:
    """`molgen sample`: check --out and make the new folder beside it, sample, write the whole result into the new
    folder, which then replaces --out; print."""
    from molgen.replaced import replaced_folder

    with replaced_folder(args.out, SAMPLE_FILES) as staging:
        _, samples = _sampled(args, args.chain_frames if args.chain else 0)
        with writing(staging, shown_as=args.out):
            written, figures = _write_samples(staging, args, samples)
    metrics = samples.metrics()
    print(_describe(samples))
    print(f"stable: {metrics.n_stable_molecules} of {metrics.n_molecules} molecules ({100 * metrics.mol_stable:.1f}%), "
          f"{100 * metrics.atom_stable:.1f}% of atoms; valid: {metrics.n_valid} ({100 * metrics.validity:.1f}%), "
          f"{metrics.n_unique} unique")
    from molgen.chem.figures import format_figures  # after the options' checks: it imports torch

    print(format_figures(figures))
    print("files: " + ", ".join(str(args.out / name) for name in written))


def _write_samples(folder: Path, args: argparse.Namespace, samples) -> tuple[list[str], dict]:
    """Write the molecules, the pictures asked for and summary.json (last) into `folder`; returns the file names and
    the connectivity and distance figures."""
    from molgen.chem.draw import draw_chain, draw_grid
    from molgen.chem.io import write_xyz
    from molgen.sampling import chain_labels

    metrics, checks = samples.metrics(), samples.checks
    names = [f"molgen sample {i}: {check.smiles if check.valid else 'invalid'}"
             + (" (stable)" if check.stable else "") for i, check in enumerate(checks)]
    figures = write_sample_tables(folder, samples, names)
    write_xyz(folder / "molecules.xyz", samples.molecules, names)
    written = ["molecules.sdf", "molecules.xyz", "molecules.csv"]
    if args.grid:
        shown = slice(0, args.grid)
        fixed_atoms = len(samples.fragment[1]) if samples.fragment is not None else 0
        draw_grid(folder / "grid.png", samples.molecules[shown], checks[shown], GRID_COLUMNS, fixed_atoms)
        written.append("grid.png")
    if args.chain:
        frames = [(frame.positions, frame.atom_types) for frame in samples.chain]
        for name in ("chain.png", "chain.gif"):
            draw_chain(folder / name, frames, chain_labels(samples.chain))
            written.append(name)
    if not args.no_report:
        written.append("report.html")  # written last but one, from the summary's figures
    summary = {"checkpoint": str(samples.checkpoint), "checkpoint_step": samples.checkpoint_step,
               "settings": asdict(samples.settings), "seconds": samples.seconds, "compute": samples.compute,
               "files": [str(args.out / name) for name in written], **metrics.to_dict(), **figures}
    if samples.fragment is not None:
        summary["fixed"] = {"fragment": str(args.fix), "atoms": len(samples.fragment[1])}
    if not args.no_report:
        write_sample_report(folder / "report.html", samples, summary, fragment_path=args.fix)
    _write_json(folder / "summary.json", summary)
    return [*written, "summary.json"], figures


def _write_json(path: Path, payload: dict) -> None:
    from molgen.atomic import atomic_write

    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)


def evaluate_checkpoint(
    args: argparse.Namespace,
    training_smiles: Callable[[], set[str] | None],
    json_path: Path | None = None,
    cache_dir: Path | None = None,
) -> None:
    """`molgen evaluate --checkpoint`: EDM's protocol — metrics of N samples with 95% CIs and the test NLL.

    `args` holds the options of `add_checkpoint_arguments`; `training_smiles` is called after sampling (it may need
    the QM9 data; a bad checkpoint fails first); the metrics also go to `json_path`; the test split is read from
    the QM9 cache in `cache_dir` (None: the default cache).
    """
    from molgen.chem.figures import format_figures
    from molgen.evaluation import intervals

    loaded, samples = _sampled(args)
    metrics = samples.metrics(training_smiles())
    _, figures, rows = evaluate_figures(samples.molecules, None, args)  # connectivity, distances, strain, PoseBusters
    nll = _test_nll(loaded, args, cache_dir) if args.nll_passes else None
    print(_describe(samples))
    print(metrics.format_table(intervals(metrics)))
    print(format_figures(figures))
    if nll is not None:
        print(f"test NLL {nll.mean:.2f} ± {nll.standard_error:.2f} nats per molecule ({nll.num_molecules:,} test "
              f"molecules, {args.nll_passes} pass(es), standard error)")
    if json_path is not None:
        payload = {"checkpoint": str(samples.checkpoint), "checkpoint_step": samples.checkpoint_step,
                   "settings": asdict(samples.settings), "sampling_seconds": samples.seconds,
                   "compute": samples.compute,
                   "seconds_per_molecule": samples.seconds_per_molecule, **metrics.to_dict(), **figures,
                   "intervals_95": {k: list(v) for k, v in intervals(metrics).items()},
                   "test_nll": None if nll is None else {"mean": nll.mean, "standard_error": nll.standard_error,
                                                         "num_molecules": nll.num_molecules,
                                                         "passes": args.nll_passes}}
        with writing(json_path):
            _write_json(json_path, payload)
        print(f"metrics written to {json_path}")
    if getattr(args, "report", None) is not None:
        with writing(args.report):
            write_sample_report(args.report, samples, {**metrics.to_dict(), **figures}, rows)
        print(f"report written to {args.report}")


def _test_nll(loaded, args: argparse.Namespace, cache_dir: Path | None):
    """EDM's test-split NLL of the loaded weights, or None (with a note) when the QM9 data is not installed."""
    from molgen.evaluation import test_split_nll

    try:
        return test_split_nll(loaded, cache_dir, args.nll_passes, args.batch_size, args.seed,
                              args.nll_molecules, progress=not args.no_progress)
    except DataError as err:
        print(f"test NLL not computed: {err}", file=sys.stderr)
        return None
