"""The GPU path, as far as a CPU allows: training without RDKit and qm9pack from a data export, time-boxed
segments of scripts/gpu_train.sh that resume each other, and the GPU config's scaling."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.config import load_config
from molgen.data.export import export_splits

from .helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_train.sh"

@pytest.fixture()
def machine(qm9_splits, tmp_path, environment_without) -> dict[str, Path]:
    """A tiny data export, a tiny run config and an environment without RDKit, qm9pack or a QM9 cache."""
    export = tmp_path / "tiny.npz"
    export_splits(export, qm9_splits, max_molecules=64)
    config = tmp_path / "run.json"
    values = tiny_config(tmp_path / "run", max_steps=100_000, threads=1, eval_every=5, eval_molecules=16).to_dict()
    config.write_text(json.dumps(values))
    return {"export": export, "config": config, "environment": environment_without("rdkit", "qm9pack")}


@pytest.mark.slow
def test_trainer_runs_without_rdkit(machine, tmp_path):
    code = f"""
import sys
from molgen.cli import main
assert main(["train", {str(machine["config"])!r}, "--data", {str(machine["export"])!r}, "--max-steps", "1",
             "--set", "train.sample_every=1", "--no-progress"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("rdkit", "qm9pack"))
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", code], env=machine["environment"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RDKit is not available" in result.stderr and "finished at step 1" in result.stdout
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
    assert not any(Path(machine["environment"]["MOLGEN_CACHE_DIR"]).iterdir())  # the QM9 cache was never needed


def segment(machine: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    """One 2-second segment of scripts/gpu_train.sh on the CPU."""
    command = ["bash", str(SCRIPT), "--data", str(machine["export"]), "--config", str(machine["config"]),
               "--device", "cpu", "--seconds", "2", "--out", str(out), "--python", sys.executable, *extra]
    result = subprocess.run(command, env=machine["environment"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def joined(out: Path, name: str) -> Path:
    """A file that gpu_train.sh split into parts, joined again."""
    parts = sorted(out.glob(f"{name}.part-*"))
    assert len(parts) >= 2, name
    target = out.parent / name
    target.write_bytes(b"".join(p.read_bytes() for p in parts))
    return target


@pytest.mark.slow
def test_time_boxed_segments_resume(machine, tmp_path):
    first = segment(machine, tmp_path / "out1", "--cooldown-share", "0")
    assert "a new run" in first.stdout and "time limit reached at step" in first.stdout
    step = load_checkpoint(tmp_path / "out1" / "last.pt")["step"]
    assert step > 0 and {p.name for p in (tmp_path / "out1").iterdir()} == {"last.pt", "best.pt", "log.csv",
                                                                             "config.json"}

    # the GPU rehearsal: resume the run folder's last.pt at another batch size with a re-warm-up, then cool down
    out = tmp_path / "out2"
    second = segment(machine, out, "--max-file-size", "20K", "--batch", "32", "--cooldown-share", "0.4")
    assert f"resuming from {tmp_path / 'run' / 'last.pt'} at step {step}" in second.stdout
    assert "molecules/s" in second.stdout and "cooldown branch:" in second.stdout and "shipped:" in second.stdout
    assert all(p.stat().st_size <= 20 * 1024 for p in out.iterdir())
    last = joined(out, "last.pt")
    assert last.read_bytes() == (tmp_path / "run" / "last.pt").read_bytes()
    main = load_checkpoint(last)
    assert main["step"] > step and main["config"]["data"]["batch_size"] == 32 and main["rewarmup_start"] is not None
    shipped = load_checkpoint(joined(out, "shipped.pt"))
    assert shipped["step"] == main["step"] and shipped["cooldown_start"] is None  # the main branch, resumable
    report = json.loads((out / "shipped.json").read_text())
    assert report["branch_start_molecules"] == main["molecules"] and (out / "cooldown_log.csv").exists()

    bad = subprocess.run(["bash", str(SCRIPT), "--data", str(tmp_path / "none.npz")], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == f"gpu_train.sh: error: no data export at {tmp_path}/none.npz"


def test_gpu_config_scales_the_cpu_recipe():
    cpu = load_config(ROOT / "configs" / "qm9_ponita_cpu.yaml")
    gpu = load_config(ROOT / "configs" / "qm9_ponita_gpu_segments.yaml")
    ratio = gpu.data.batch_size / cpu.data.batch_size
    assert ratio == 4 and gpu.train.lr == pytest.approx(cpu.train.lr * math.sqrt(ratio))
    assert gpu.train.ema_decays[0] == cpu.train.ema_decays[0]  # per 64 molecules, whatever the batch
    assert gpu.train.max_steps * ratio == cpu.train.max_steps and gpu.train.eval_every * ratio == cpu.train.eval_every
    assert gpu.model.name == "ponita" and gpu.model.config["channels_per_kernel"] == 1
    parameters = sum(p.numel() for p in gpu.model.build().parameters())
    assert 20 * parameters < 15 * 2**20  # weights, EMA and three AdamW (amsgrad) tensors in float32 < 16 MiB


@pytest.mark.slow
def test_benchmark_table(qm9_splits, tmp_path):
    from molgen.data.stats import node_count_histogram
    from molgen.train.bench import batches_that_fit, benchmark, format_table

    config = tiny_config(tmp_path / "bench", threads=1)
    histogram = node_count_histogram(qm9_splits["train"])
    rows = benchmark(config, qm9_splits["train"], histogram, [8, 16], 2, 12.0)  # time for all three cases
    assert [(r.model, r.batch_size) for r in rows] == [("ponita", 8), ("ponita", 16), ("egnn", 2)]
    assert all(r.steps >= 1 and r.molecules_per_s > 0 and r.peak_memory_mib > 0 for r in rows)
    table = format_table(rows, torch.device("cpu"))
    assert table.startswith("device: CPU") and "| egnn | 5,339,920 | 2 | fp32 |" in table
    assert not (tmp_path / "bench").exists()  # the benchmark writes nothing

    # no time left after the first case: the others are skipped
    skipped = benchmark(config, qm9_splits["train"], histogram, [8, 16], 2, 0.0)
    assert [(r.model, r.batch_size, r.steps) for r in skipped] == [("ponita", 8, 1)]
    assert batches_that_fit([256, 1024, 2048], 2000) == [256, 1024, 2000]
    assert batches_that_fit([256, 1024, 2048], 1000) == [256, 1000]


def readme_rehearsal(out_root: Path, budgets: dict[str, str]) -> tuple[list[str], list[str]]:
    """The README's rehearsal of the borrowed-GPU command, as written there: its `molgen data export` and the GPU
    command followed by the rehearsal's options, with /tmp and OUTDIR moved under `out_root` and the time budgets
    replaced as `budgets` says (e.g. {"--bench 45": "--bench 1"}; each must be in the README's text)."""
    text = (ROOT / "README.md").read_text()
    command = re.search(r"bash scripts/gpu_train\.sh .*?--out OUTDIR", text, re.DOTALL).group(0)
    export = re.search(r"`(molgen data export /tmp/small\.npz[^`]*)`", text).group(1)
    options = re.search(r"then the same command with\s+`([^`]+)`", text).group(1)
    rehearsal = command.replace("\\\n", " ") + " " + options
    for written, shortened in budgets.items():
        assert written in rehearsal, written
        rehearsal = rehearsal.replace(written, shortened)
    paths = {"/tmp/": f"{out_root}/", "OUTDIR": str(out_root / "OUTDIR")}
    for written, moved in paths.items():
        rehearsal, export = rehearsal.replace(written, moved), export.replace(written, moved)
    return shlex.split(export), shlex.split(rehearsal)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "checkpoints" / "qm9_ponita_cpu.pt").is_file(), reason="no shipped checkpoint")
def test_the_readme_gpu_rehearsal(qm9_cache_dir, tmp_path, monkeypatch, environment_without):
    """The README's CPU rehearsal of the GPU command, as written, with --bench 45 and --seconds 30 shortened: the
    benchmark caps batch 2048 at the export's 2,000 molecules, and the copy line names only the files copied."""
    from molgen.cli import main

    export, command = readme_rehearsal(tmp_path, {"--bench 45": "--bench 1", "--seconds 30": "--seconds 6"})
    monkeypatch.setenv("MOLGEN_CACHE_DIR", str(qm9_cache_dir))
    assert export[0] == "molgen" and main(export[1:]) == 0
    environment = {**environment_without("rdkit", "qm9pack"), "PYTHON": sys.executable}  # as the borrowed machine
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "OUTDIR"
    assert ("benchmark: the training set has 2,000 molecules, so the batches [256, 1024, 2048] become "
            "[256, 1024, 2000]") in result.stdout
    assert "| ponita | 292,280 | 256 |" in (out / "bench.md").read_text()
    assert "resuming from checkpoints/qm9_ponita_cpu.pt" in result.stdout and "shipped:" in result.stdout
    copied = sorted(p.name for p in out.iterdir())
    assert copied == sorted(["last.pt", "log.csv", "config.json", "bench.md", "shipped.pt", "shipped.json",
                             "cooldown_log.csv"])  # no validation ran in the main branch: no best.pt
    assert result.stdout.splitlines()[-1] == f"copied last.pt log.csv config.json bench.md shipped.pt " \
                                             f"shipped.json cooldown_log.csv to {out}"
    assert load_checkpoint(out / "last.pt")["config"]["data"]["batch_size"] == 128


@pytest.mark.slow
def test_a_failed_segment_copies_nothing_and_says_one_line(machine, tmp_path):
    command = ["bash", str(SCRIPT), "--data", str(machine["export"]), "--config", str(machine["config"]),
               "--device", "cpu", "--seconds", "2", "--python", sys.executable]
    out = tmp_path / "out"
    too_large = ["--batch", "100", "--bench", "5", "--out", str(out), "--", "--set", "data.max_train_molecules=null"]
    failed = subprocess.run([*command, *too_large], env=machine["environment"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert failed.returncode == 2 and "copied" not in failed.stdout and not any(out.iterdir())
    assert failed.stderr.splitlines() == ["segment: error: the training set has 64 molecules, fewer than one batch "
                                          "(100)"]  # before the benchmark: nothing of the run was written
    assert not (tmp_path / "run").exists()

    blocked = tmp_path / "a_file"
    blocked.write_text("")
    unwritable = subprocess.run([*command, "--out", str(blocked / "out")], env=machine["environment"],
                                capture_output=True, text=True, timeout=120, check=False)
    assert unwritable.returncode == 2 and not (tmp_path / "run").exists()  # refused before any training
    assert unwritable.stderr == f"gpu_train.sh: error: cannot write to --out {blocked / 'out'}\n"
