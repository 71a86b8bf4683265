"""Mutation check: one-line bugs put into a copy of the repository, one at a time, each run against the fast suite.

Usage:
    .venv/bin/python eval/mutants.py                      # every mutant; a markdown table on stdout
    .venv/bin/python eval/mutants.py --list               # the mutants and the behaviour each one breaks
    .venv/bin/python eval/mutants.py --only loss_half,ema_frozen --jobs 2 --timeout 300

The mutants are listed in eval/mutant_list.py. The working tree is never changed: its tracked and untracked, not
ignored files (`git ls-files --cached --others --exclude-standard`) are copied into a temporary folder per job, and
each mutant replaces one line there, runs `pytest -m "not slow" -x` with the tests against recorded golden files
left out, and puts the line back. pytest runs in the copy with PYTHONPATH pointing at it, so the copy's molgen
shadows the editable install (checked once by its import path), and with PYTHONDONTWRITEBYTECODE=1, so no stale
bytecode outlives a mutant. A mutant whose original line is not found exactly once is refused. The unchanged copy
must pass first (the baseline), else nothing is reported. A mutant is *killed* when the suite fails, *survived* when
it passes, *timeout* when the suite runs past --timeout (killed with everything it started; not counted as killed).
Run by hand; no test calls it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from mutant_list import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_TESTS = ("tests/sampling/test_golden_samples.py",)  # compare against files recorded from the code itself
PYTEST = ("-m", "pytest", "-m", "not slow", "-q", "-x", "-p", "no:cacheprovider",
          *(f"--ignore={path}" for path in GOLDEN_TESTS))


# ------------------------------------------------------------------------------------------------ the copy


def project_files(root: Path = ROOT) -> list[str]:
    """The tracked and the untracked, not ignored files of the working tree (relative paths), as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return sorted({path for path in listed if path and (root / path).is_file()})


def copy_project(destination: Path, files: list[str], root: Path = ROOT) -> Path:
    """Copy `files` from `root` into `destination` (created); returns it."""
    for path in files:
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, target)
    return destination


def environment(copy: Path) -> dict[str, str]:
    """The environment of pytest in a copy: the copy first on PYTHONPATH, no bytecode written."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}


def check_import_path(copy: Path) -> None:
    """SystemExit unless `import molgen` in the copy's environment finds the copy's package."""
    found = subprocess.run([sys.executable, "-c", "import molgen; print(molgen.__file__)"], cwd=copy,
                           env=environment(copy), capture_output=True, text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"mutants: the copy's molgen is not the one imported ({found!r}, copy {copy})")


# ------------------------------------------------------------------------------------------------ one run


@dataclass(frozen=True)
class Result:
    """The outcome of one mutant: killed, survived, timeout or refused; seconds; the first failing test or why."""

    mutant: Mutant
    status: str
    seconds: float
    detail: str = ""


def run_suite(copy: Path, timeout: float) -> tuple[str, float, str]:
    """Run the fast suite in `copy`: ('passed' | 'failed' | 'timeout', seconds, the first failing test)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *PYTEST], cwd=copy, env=environment(copy), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # pytest and whatever it started
        process.communicate()
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    if process.returncode == 0:
        return "passed", seconds, ""
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    last = output.strip().splitlines()[-1] if output.strip() else f"exit status {process.returncode}"
    return "failed", seconds, failed.group(1) if failed else last


def line_count(text: str, line: str) -> int:
    """How many lines of `text` equal `line` exactly."""
    return sum(1 for candidate in text.splitlines() if candidate == line)


def apply(text: str, mutant: Mutant) -> str:
    """`text` with the mutant's one original line replaced (the caller checked that it occurs once)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip("\r\n") == mutant.original:
            lines[index] = mutant.mutated + line[len(line.rstrip("\r\n")):]
    return "".join(lines)


def run_mutant(copy: Path, mutant: Mutant, timeout: float) -> Result:
    """Apply `mutant` in `copy`, run the fast suite, restore the file (checked), and say what happened."""
    target = copy / mutant.path
    if not target.is_file():
        return Result(mutant, "refused", 0.0, f"no file {mutant.path}")
    original = target.read_bytes()
    count = line_count(original.decode(), mutant.original)
    if count != 1:
        return Result(mutant, "refused", 0.0, f"original line found {count} times")
    try:
        target.write_text(apply(original.decode(), mutant))
        outcome, seconds, detail = run_suite(copy, timeout)
    finally:
        target.write_bytes(original)
    if target.read_bytes() != original:
        raise SystemExit(f"mutants: {mutant.path} was not restored in {copy}")
    status = {"failed": "killed", "passed": "survived", "timeout": "timeout"}[outcome]
    return Result(mutant, status, seconds, detail)


# ------------------------------------------------------------------------------------------------ the table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(results: list[Result]) -> str:
    """The results as a markdown table, in the order of MUTANTS, and a count."""
    lines = ["| mutant | file | behaviour it breaks | result | seconds | first failing test |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.mutant.name} | {r.mutant.path} | {_cell(r.mutant.breaks)} | {r.status} | "
                     f"{r.seconds:.0f} | {_cell(r.detail)} |")
    counts = {status: sum(r.status == status for r in results) for status in ("killed", "survived", "timeout",
                                                                                "refused")}
    lines += ["", f"{counts['killed']} of {len(results)} killed, {counts['survived']} survived, {counts['timeout']} "
                  f"timed out (rerun them with a longer --timeout), {counts['refused']} refused."]
    return "\n".join(lines)


def selected(only: str | None) -> list[Mutant]:
    """The mutants named in `only` (comma-separated; None: all); SystemExit(2) naming an unknown one."""
    if only is None:
        return list(MUTANTS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    known = {mutant.name: mutant for mutant in MUTANTS}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        print(f"mutants: error: unknown mutant(s) {', '.join(unknown) or '(none given)'}; see --list",
              file=sys.stderr)
        raise SystemExit(2)
    return [mutant for mutant in MUTANTS if mutant.name in names]


# ------------------------------------------------------------------------------------------------ main


def run_all(mutants: list[Mutant], jobs: int, timeout: float, baseline: bool) -> list[Result]:
    """Copy the project once per job, check the imports and the baseline, then run the mutants on the copies."""
    files = project_files()
    with tempfile.TemporaryDirectory(prefix="molgen-mutants-") as folder:
        paths = [copy_project(Path(folder) / f"copy{job}", files) for job in range(jobs)]
        check_import_path(paths[0])
        if baseline:
            outcome, seconds, detail = run_suite(paths[0], timeout)
            print(f"baseline (no mutant): {outcome} in {seconds:.0f} s {detail}", file=sys.stderr)
            if outcome != "passed":
                raise SystemExit(f"mutants: the unchanged suite does not pass ({outcome}: {detail}); nothing to report")
        copies: Queue[Path] = Queue()
        for path in paths:
            copies.put(path)

        def one(mutant: Mutant) -> Result:
            copy = copies.get()
            try:
                result = run_mutant(copy, mutant, timeout)
            finally:
                copies.put(copy)
            print(f"{mutant.name}: {result.status} ({result.seconds:.0f} s) {result.detail}", file=sys.stderr)
            return result

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(one, mutants))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", default=None, help="comma-separated mutant names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at the same time, each in its own copy")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant before it counts as timeout")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unchanged suite")
    args = parser.parse_args(argv)
    mutants = selected(args.only)
    if args.list:
        for mutant in mutants:
            source = ROOT / mutant.path
            count = line_count(source.read_text(), mutant.original) if source.is_file() else 0
            found = "" if count == 1 else f"  [original line found {count} times: refused]"
            print(f"{mutant.name:26} {mutant.path:32} {mutant.breaks}{found}")
        return 0
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs must be at least 1 and --timeout positive")
    print(table(run_all(mutants, args.jobs, args.timeout, not args.no_baseline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
