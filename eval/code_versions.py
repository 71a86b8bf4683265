"""Run one benchmark task under two versions of molgen in the same session: a past commit and today's tree.

`code_at(commit)` extracts that commit's `molgen/` package (git archive) into a cache folder; `run_task(code,
task, options, env)` runs `eval/bench_tasks.py TASK` in a fresh Python process whose `molgen` is that code (or
this checkout's when `code` is None) and returns the JSON it prints. Each measurement thus gets its own process,
its own thread settings and, with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, an emulated AVX2-only CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = Path(__file__).resolve().parent / "bench_tasks.py"
EMULATE_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def code_at(commit: str, cache: Path = Path.home() / ".cache" / "molgen" / "code") -> Path:
    """A folder whose `molgen/` is the package at `commit` (extracted once); ValueError if it is no commit."""
    resolved = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                              capture_output=True, text=True)
    if resolved.returncode != 0:
        raise ValueError(f"{commit!r} is not a commit of {ROOT}")
    folder = cache / resolved.stdout.strip()
    if not (folder / "molgen" / "__init__.py").is_file():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", folder.name, "molgen"], check=True,
                                 capture_output=True)
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
    return folder


def parse_sizes(text: str) -> list[int]:
    """'30,100' -> [30, 100]; '' -> []; every size a positive integer (argparse's error otherwise)."""
    sizes = [item.strip() for item in text.split(",") if item.strip()]
    if not all(size.isdigit() and int(size) > 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive integers")
    return [int(size) for size in sizes]


def checkout_label() -> str:
    """This checkout's commit, e.g. '35ce544' or '35ce544-dirty' with uncommitted changes to tracked files."""
    described = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                               text=True)
    return described.stdout.strip() or "unknown commit"


def code_environment(code: Path | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process whose `molgen` is `code`'s (None: this checkout's), plus `env`."""
    return {**os.environ, "PYTHONPATH": str(code if code is not None else ROOT), **(env or {})}


def run_task(code: Path | None, task: str, options: dict, env: dict[str, str] | None = None) -> dict:
    """Run `bench_tasks.py task` with `options` under `code` (None: this checkout); its JSON result."""
    result = subprocess.run([sys.executable, str(TASKS), task, json.dumps(options)],
                            env=code_environment(code, env), cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{task} under {code or ROOT} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
