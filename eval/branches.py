"""A matched-compute study: named training branches from one main-branch checkpoint, each given the same CPU time,
then cooled down and scored side by side.

Each branch is `NAME` or `NAME=ITEM;ITEM;...`, an ITEM being a config override `KEY=VALUE` (molgen train's
--set) or `grow:ARGS`, a `molgen grow` of the start checkpoint first (ARGS as on its command line). Every branch
resumes from a copy of `--resume` (a main-branch last.pt, not a shipped file's cooled EMA) with that checkpoint's
own config, so all see identical batches and noise. They train in pairs, one thread each, without evaluation
(train.eval_every=0, train.sample_every=0), until the training process has used `--budget` seconds of CPU time
(user + sys, read from /proc while it runs; then SIGTERM, on which molgen train finishes its step and saves
last.pt; the few seconds of start-up count too). Then each branch gets a cooldown branch of 15/85 x the molecules
it saw since the study's start (train.cooldown_molecules; README "cooldown branch"), and each cooled-down file
(shipped.pt: the EMA of the best NLL) is scored: the NLL on the first `--molecules` validation molecules (default
all, one noise seed, paired against the first branch), and atom and molecule stability and validity of
`--samples` molecules from the default sampler with one seed (95% Wilson intervals). One markdown table per
horizon goes to FOLDER/horizon_K.md and stdout (and is appended to --out).

    python eval/branches.py --resume runs/qm9_ponita_cpu/last.pt --folder runs/branches --budget 2700 \\
        --branch baseline --branch "deep8=grow:--layers 8" \\
        --branch "min_snr=train.loss_weighting=min_snr;train.min_snr_gamma=5" \\
        --branch "radial16=grow:--radial-features 16" --out eval/branches.md
    python eval/branches.py --folder runs/branches --extend baseline,deep8 --budget 2700 --out eval/branches.md

Branches may also be started a pair at a time from the same start: a later run in the same --folder with
--resume FOLDER/start.pt and --paired-with baseline pairs its NLL against the baseline scored before (each scored
branch keeps its per-molecule NLL in FOLDER/NAME/nll_K.pt).

The study's branches: (a) `baseline`; (b) `deep8`, deepened 5 -> 8 (Net2Net); (c) `min_snr`, min-SNR-γ weighting
with γ = 5; (d) `radial16`, a finer spatial basis: 16 radial Bessel features each of d, a and b
(model.config.radial_features; `grow:--radial-features 16 --radial-basis gaussian` for SchNet's Gaussians) whose
first-layer weights start at zero, so the branch starts from the main branch's function exactly.

Pause the long run first (its CPU time would slow the branches): this tool signals no process but its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

COOLDOWN_SHARE = 15 / 85
TRAIN = [sys.executable, "-m", "molgen", "train"]
QUIET = ["--no-progress", "--set", "train.threads=1", "--set", "train.eval_every=0", "--set", "train.sample_every=0"]


@dataclass(frozen=True)
class Branch:
    """A named branch: its config overrides and the `molgen grow` arguments run before training (or None)."""

    name: str
    sets: tuple[str, ...] = ()
    grow: tuple[str, ...] | None = None


def parse_branch(text: str) -> Branch:
    """'NAME' or 'NAME=ITEM;ITEM' with ITEM 'KEY=VALUE' or 'grow:ARGS' -> Branch; ValueError naming the problem."""
    name, _, items = text.partition("=")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"branch {text!r}: the name must be letters, digits, '-' or '_'")
    sets, grow = [], None
    for item in filter(None, (part.strip() for part in items.split(";"))):
        if item.startswith("grow:"):
            grow = tuple(shlex.split(item[len("grow:"):]))
        elif "=" in item:
            sets.append(item)
        else:
            raise ValueError(f"branch {name}: {item!r} is neither KEY=VALUE nor grow:ARGS")
    return Branch(name, tuple(sets), grow)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_budgeted(processes: dict[str, subprocess.Popen], budget: float | None, started) -> dict[str, float]:
    """Wait for the processes; send each SIGTERM once it has used `budget` CPU seconds and `started(name)` says
    its training loop runs. Their CPU seconds (user + sys, from wait4); one error line and exit 2 if one fails
    (molgen train exits 143 after saving last.pt on SIGTERM)."""
    used, signalled = {}, set()
    while len(used) < len(processes):
        for name, process in processes.items():
            if name in used:
                continue
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                process.returncode = code
                if code != 0 and not (name in signalled and code == 128 + signal.SIGTERM):  # 143: stopped, saved
                    fail(f"the run of {name} failed (exit status {code})")
                used[name] = usage.ru_utime + usage.ru_stime
            elif budget is not None and name not in signalled and started(name):
                if cpu_seconds(process.pid) >= budget:
                    process.send_signal(signal.SIGTERM)
                    signalled.add(name)
        time.sleep(0.2)
    return used


def checkpoint_counts(path: Path) -> tuple[int, int]:
    """(step, molecules seen) of a training checkpoint."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return int(payload["step"]), int(payload["molecules"])


def log_size(run_dir: Path) -> int:
    log = run_dir / "log.csv"
    return log.stat().st_size if log.exists() else 0


def train_pairs(folder: Path, commands: dict[str, list[str]], budget: float | None, pairs: int) -> dict[str, float]:
    """Run the branches' commands `pairs` at a time; CPU seconds of each (SIGTERM at `budget` if given)."""
    used, names = {}, list(commands)
    for first in range(0, len(names), pairs):
        group = names[first:first + pairs]
        logs = {name: log_size(folder / name / "main") for name in group}
        processes = {name: subprocess.Popen(commands[name]) for name in group}
        used.update(run_budgeted(processes, budget, lambda n: log_size(folder / n / "main") > logs[n]))
    return used


def start_branch(folder: Path, branch: Branch, start: Path) -> list[str]:
    """Create the branch's folder (growing the start checkpoint if asked); its first training command."""
    directory = folder / branch.name
    directory.mkdir(parents=True, exist_ok=True)
    if branch.grow is not None:
        grown = directory / "grown.pt"
        if subprocess.run([sys.executable, "-m", "molgen", "grow", str(start), "--out", str(grown),
                           *branch.grow]).returncode != 0:
            shutil.rmtree(directory)
            fail(f"molgen grow failed for branch {branch.name} (its message is above)")
        start = grown
    config = torch.load(start, map_location="cpu", weights_only=True)["config"]
    (directory / "start_config.json").write_text(json.dumps(config, indent=2))
    (directory / "branch.json").write_text(json.dumps({"sets": branch.sets, "grow": branch.grow,
                                                       "start": checkpoint_counts(start)}))
    sets = [argument for item in branch.sets for argument in ("--set", item)]
    return [*TRAIN, str(directory / "start_config.json"), "--resume", str(start), "--run-dir",
            str(directory / "main"), *QUIET, *sets]


def extend_command(folder: Path, name: str) -> list[str]:
    """The command continuing a branch from its own last.pt (its run's config holds its overrides)."""
    main = folder / name / "main"
    if not (main / "last.pt").is_file():
        fail(f"no branch {name} in {folder} (no {main / 'last.pt'})")
    return [*TRAIN, str(main / "config.json"), "--resume", str(main / "last.pt"), *QUIET]


def cooldown_commands(folder: Path, names: list[str], horizon: int, sets: list[str]) -> dict[str, list[str]]:
    """A cooldown branch per branch of 15/85 x the molecules it saw since the study's start."""
    commands = {}
    for name in names:
        main = folder / name / "main"
        _, seen = checkpoint_counts(main / "last.pt")
        _, start = json.loads((folder / name / "branch.json").read_text())["start"]
        molecules = max(1, round(COOLDOWN_SHARE * (seen - start)))
        commands[name] = [*TRAIN, str(main / "config.json"), "--resume", str(main / "last.pt"), "--run-dir",
                          str(folder / name / f"cooldown_{horizon}"), *QUIET,
                          "--set", f"train.cooldown_molecules={molecules}",
                          *[argument for item in sets for argument in ("--set", item)]]
    return commands


def record_horizon(folder: Path, name: str, horizon: int, cpu: float) -> dict:
    """Append this horizon's CPU seconds, steps and molecules to the branch's history; this horizon's record."""
    history_file = folder / name / "horizons.json"
    history = json.loads(history_file.read_text()) if history_file.exists() else []
    step, molecules = checkpoint_counts(folder / name / "main" / "last.pt")
    record = {"horizon": horizon, "cpu_seconds": cpu, "step": step, "molecules": molecules}
    history = [h for h in history if h["horizon"] != horizon] + [record]
    history_file.write_text(json.dumps(history, indent=2))
    return record


def score(path: Path, batches, samples: int, seed: int) -> dict:
    """Per-molecule validation NLL and sample metrics (with 95% intervals) of a cooled-down file's EMA."""
    from molgen.checkpoint import load_model
    from molgen.diffusion.likelihood import nll_per_molecule
    from molgen.evaluation import intervals
    from molgen.sampling import SampleSettings, generate

    loaded = load_model(path)
    with torch.inference_mode():
        nll = nll_per_molecule(loaded.model, loaded.schedule, batches, loaded.node_distribution, 1, seed, False,
                               None)  # [n]
    metrics = generate(loaded, SampleSettings(num_molecules=samples, seed=seed, device="cpu"), progress=False).metrics()
    return {"nll": nll, "metrics": metrics, "intervals": intervals(metrics)}


def percent(value: float, interval: tuple[float, float] | None = None) -> str:
    text = f"{100 * value:.1f}"
    return text if interval is None else f"{text} ({100 * interval[0]:.1f}–{100 * interval[1]:.1f})"


def horizon_table(records: dict[str, dict], scores: dict[str, dict], previous: dict[str, dict],
                  reference: tuple[str, torch.Tensor]) -> str:
    """Markdown: one row per branch; the NLL difference is paired against `reference` (a name, its NLL [n])."""
    lines = [f"| branch | steps | molecules/s (this horizon) | CPU-seconds (all horizons) | NLL | paired NLL vs {reference[0]} "
             "± s.e. | atom % | molecule % (95% CI) | valid % |", "|---|---|---|---|---|---|---|---|---|"]
    reference = reference[1]
    for name, record in records.items():
        nll, metrics, bounds = scores[name]["nll"], scores[name]["metrics"], scores[name]["intervals"]
        cpu = record["cpu_seconds"]
        speed = (record["molecules"] - previous[name]["molecules"]) / cpu if cpu > 0 else float("nan")
        difference = nll - reference  # [n], paired: same molecules, same noise
        se = float(difference.std(unbiased=True)) / len(difference) ** 0.5 if len(difference) > 1 else float("nan")
        lines.append(f"| {name} | {record['step']:,} | {speed:.1f} | {record['cpu_total']:.0f} | {float(nll.mean()):.2f} | "
                     f"{float(difference.mean()):+.2f} ± {se:.2f} | {percent(metrics.atom_stable)} | "
                     f"{percent(metrics.mol_stable, bounds.get('mol_stable'))} | {percent(metrics.validity)} |")
    return "\n".join(lines)


def new_study(args: argparse.Namespace) -> tuple[dict[str, list[str]], int]:
    """Copy the start checkpoint and set up every branch; their first commands and horizon 1."""
    branches = [parse_branch(text) for text in args.branch]
    for branch in branches:
        if (args.folder / branch.name).exists():
            fail(f"{args.folder / branch.name} exists: continue it with --extend, or use another --folder")
    args.folder.mkdir(parents=True, exist_ok=True)
    start = args.folder / "start.pt"
    if not (start.exists() and start.samefile(args.resume)):  # a later pair may start from the same copy
        shutil.copyfile(args.resume, start)  # the main branch may overwrite its last.pt meanwhile
    return {branch.name: start_branch(args.folder, branch, start) for branch in branches}, 1


def extended_study(args: argparse.Namespace) -> tuple[dict[str, list[str]], int]:
    """The named branches' continuing commands and their next horizon (they must stand at the same one)."""
    names = [name for name in args.extend.split(",") if name]
    commands = {name: extend_command(args.folder, name) for name in names}
    horizons = {len(json.loads((args.folder / name / "horizons.json").read_text())) for name in names}
    if len(horizons) != 1:
        fail(f"the branches {', '.join(names)} stand at different horizons {sorted(horizons)}; extend them apart")
    return commands, horizons.pop() + 1


def fail(message: str) -> None:
    """One error line on stderr, exit status 2."""
    print(f"branches: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", type=Path, help="the main-branch checkpoint every new branch starts at")
    parser.add_argument("--branch", action="append", default=[], help="NAME or NAME=KEY=VALUE;grow:ARGS;...")
    parser.add_argument("--extend", default=None, help="comma-separated branches to continue by --budget")
    parser.add_argument("--budget", type=float, required=True, help="CPU seconds of training per branch")
    parser.add_argument("--folder", type=Path, default=Path("runs/branches"))
    parser.add_argument("--pairs", type=int, default=2, help="branches trained at once (one thread each)")
    parser.add_argument("--max-steps", type=int, default=None, help="also stop each branch at this step (default: only the budget)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="KEY=VALUE for the cooldown branches, e.g. train.eval_molecules=500")
    parser.add_argument("--molecules", type=int, default=None, help="validation molecules for the NLL (all)")
    parser.add_argument("--samples", type=int, default=1000, help="molecules sampled per branch")
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the NLL and of the sampling")
    parser.add_argument("--threads", type=int, default=2, help="threads of the scoring")
    parser.add_argument("--out", type=Path, default=None, help="also append the table here")
    parser.add_argument("--paired-with", default=None,
                        help="pair the NLL against this branch of --folder (default: this run's first)")
    args = parser.parse_args()
    if (args.extend is None) == (not args.branch):
        parser.error("give --branch (a new study, with --resume) or --extend NAMES, not both")
    if args.branch and (args.resume is None or not args.resume.is_file()):
        parser.error(f"a new study needs --resume, a checkpoint file (got {args.resume})")
    if args.budget <= 0 or args.pairs < 1 or args.samples < 1:
        parser.error("--budget must be > 0, --pairs and --samples >= 1")
    try:
        [parse_branch(text) for text in args.branch]
    except ValueError as err:
        parser.error(str(err))
    return args


def score_all(args: argparse.Namespace, names: list[str], horizon: int) -> dict[str, dict]:
    """The scores of every branch's cooled-down file, on the same validation batches and seeds."""
    from molgen.batch import size_batches
    from molgen.data.qm9 import QM9Dataset

    torch.set_num_threads(args.threads)
    valid = QM9Dataset("valid")
    count = len(valid) if args.molecules is None else min(args.molecules, len(valid))
    batches = [valid.batch(chunk) for chunk in size_batches(valid.num_atoms[:count], 100)]
    scores = {}
    for name in names:
        scores[name] = score(args.folder / name / f"cooldown_{horizon}" / "shipped.pt", batches, args.samples, args.seed)
        torch.save(scores[name]["nll"], args.folder / name / f"nll_{horizon}.pt")  # for pairing in a later run
    return scores


def paired_reference(args: argparse.Namespace, scores: dict[str, dict], horizon: int) -> tuple[str, torch.Tensor]:
    """The branch the NLL is paired against and its per-molecule NLL [n]: --paired-with (this run's or one scored
    before in the same folder, at this horizon), else this run's first branch."""
    name = args.paired_with or next(iter(scores))
    if name in scores:
        return name, scores[name]["nll"]
    stored = args.folder / name / f"nll_{horizon}.pt"
    if not stored.is_file():
        fail(f"--paired-with {name}: no scores of it at horizon {horizon} ({stored} is missing)")
    return name, torch.load(stored)


def main() -> None:
    args = arguments()
    commands, horizon = extended_study(args) if args.extend else new_study(args)
    print("reminder: pause the long run (kill -STOP its PID) until this study ends, then continue it (kill -CONT); "
          "this tool signals no other process", flush=True)
    last_step = str(args.max_steps or 10**12)  # the budget stops the branches, not the config's max_steps
    commands = {name: [*command, "--max-steps", last_step] for name, command in commands.items()}
    used = train_pairs(args.folder, commands, args.budget, args.pairs)
    previous, records = {}, {}
    for name in commands:
        history_file = args.folder / name / "horizons.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else []
        start = json.loads((args.folder / name / "branch.json").read_text())["start"]
        previous[name] = history[-1] if history else {"step": start[0], "molecules": start[1]}
        records[name] = record_horizon(args.folder, name, horizon, used[name])
        records[name]["cpu_total"] = sum(h["cpu_seconds"] for h in history) + used[name]
    train_pairs(args.folder, cooldown_commands(args.folder, list(commands), horizon, args.sets), None, args.pairs)
    scores = score_all(args, list(commands), horizon)
    count = len(next(iter(scores.values()))["nll"])
    text = (f"Horizon {horizon}: {args.budget:g} CPU-seconds of training per branch this horizon (one thread each, "
            f"{args.pairs} at a time), then a cooldown of 15/85 x the molecules seen since the start; NLL of the "
            f"cooled-down EMA on {count} validation molecules (noise seed {args.seed}), {args.samples} molecules "
            f"from the default sampler (seed {args.seed}).\n\n"
            f"{horizon_table(records, scores, previous, paired_reference(args, scores, horizon))}")
    (args.folder / f"horizon_{horizon}.md").write_text(text + "\n")
    print(text)
    if args.out is not None:
        with open(args.out, "a") as handle:
            handle.write(text + "\n\n")


if __name__ == "__main__":
    main()
