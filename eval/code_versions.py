"""Run one benchmark task under two versions of molgen in the same session: a past commit and today's tree.

`code_at(commit)` extracts that commit's `molgen/` package (git archive) into a cache folder; `run_task(code,
task, options, env)` runs `eval/bench_tasks.py TASK` in a fresh Python process whose `molgen` is that code (or
this checkout's when `code` is None) and returns the JSON it prints. Each measurement thus gets its own process,
its own thread settings and, with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, an emulated AVX2-only CPU.
"""

from __future__ import annotations

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
    """A folder whose `molgen/` is the package at `commit` (extracted once)."""
    folder = cache / commit
    if not (folder / "molgen" / "__init__.py").is_file():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "molgen"], check=True,
                                 capture_output=True).stdout
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder


def run_task(code: Path | None, task: str, options: dict, env: dict[str, str] | None = None) -> dict:
    """Run `bench_tasks.py task` with `options` under `code` (None: this checkout); its JSON result."""
    path = str(code if code is not None else ROOT)
    environment = {**os.environ, "PYTHONPATH": path, **(env or {})}
    result = subprocess.run([sys.executable, str(TASKS), task, json.dumps(options)], env=environment, cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{task} under {path} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
