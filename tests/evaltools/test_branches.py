"""eval/branches.py: branch specifications, the CPU-time budget, and a whole study of two identical branches."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.train.helpers import tiny_config

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "eval" / "branches.py"


@pytest.fixture(scope="module")
def branches():
    spec = importlib.util.spec_from_file_location("branches", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["branches"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_parse_branch(branches):
    assert branches.parse_branch("baseline") == branches.Branch("baseline")
    deep = branches.parse_branch("deep8=grow:--layers 8")
    assert deep.grow == ("--layers", "8") and deep.sets == ()
    snr = branches.parse_branch("min_snr=train.loss_weighting=min_snr; train.min_snr_gamma=5")
    assert snr.sets == ("train.loss_weighting=min_snr", "train.min_snr_gamma=5") and snr.grow is None
    for bad in ("=x=1", "a b", "x=train.lr"):
        with pytest.raises(ValueError):
            branches.parse_branch(bad)


def test_budget_stops_a_process_by_its_cpu_time(branches, tmp_path):
    """A busy child gets SIGTERM once it has used the budget in CPU time (not wall time), and exits cleanly."""
    marker = tmp_path / "stopped"
    child = ("import signal, sys\n"
             f"signal.signal(signal.SIGTERM, lambda *_: (open({str(marker)!r}, 'w').close(), sys.exit(0)))\n"
             "while True:\n    pass\n")
    busy = subprocess.Popen([sys.executable, "-c", child])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    used = branches.run_budgeted({"busy": busy, "idle": idle}, 0.4, lambda name: True)
    assert marker.exists() and 0.4 <= used["busy"] < 5
    assert used["idle"] < 0.4  # slept past the budget in wall time without using it in CPU time


@pytest.mark.slow
def test_two_identical_branches_score_alike(tmp_path):
    """A study of two branches without overrides: both rows, equal cooled-down weights, paired NLL exactly 0."""
    config = tiny_config(tmp_path / "main", max_steps=2).to_dict()
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "molgen", "train", str(tmp_path / "tiny.json"), "--no-progress"],
                   check=True, cwd=REPOSITORY)
    folder = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--resume", str(tmp_path / "main" / "last.pt"), "--folder", str(folder),
         "--budget", "120", "--max-steps", "6", "--branch", "a", "--branch", "b", "--molecules", "20",
         "--samples", "10", "--set", "train.eval_molecules=20", "--threads", "1"],
        check=True, cwd=REPOSITORY, capture_output=True, text=True)
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| a ") or line.startswith("| b ")}
    assert set(rows) == {"a", "b"} and rows["a"][0] == rows["b"][0] == "6"  # steps
    assert rows["b"][4] == "+0.00 ± 0.00"  # paired NLL vs a
    shipped = [torch.load(folder / name / "cooldown_1" / "shipped.pt", weights_only=True)["ema"] for name in "ab"]
    assert all(torch.equal(shipped[0][key], shipped[1][key]) for key in shipped[0])
    assert (folder / "horizon_1.md").read_text().strip() in result.stdout
    assert "pause the long run" in result.stdout
    later = subprocess.run(  # a later pair from the same start, paired against a's stored scores
        [sys.executable, str(SCRIPT), "--resume", str(folder / "start.pt"), "--folder", str(folder),
         "--budget", "120", "--max-steps", "6", "--branch", "c", "--paired-with", "a", "--molecules", "20",
         "--samples", "10", "--set", "train.eval_molecules=20", "--threads", "1"],
        check=True, cwd=REPOSITORY, capture_output=True, text=True)
    row = [line for line in later.stdout.splitlines() if line.startswith("| c ")][0]
    assert "paired NLL vs a" in later.stdout and row.split("|")[6].strip() == "+0.00 ± 0.00"
    extended = subprocess.run([sys.executable, str(SCRIPT), "--folder", str(folder), "--extend", "a", "--budget", "4",
                               "--molecules", "20", "--samples", "10", "--set", "train.eval_molecules=20",
                               "--threads", "1"], check=True, cwd=REPOSITORY, capture_output=True, text=True)
    row = [line for line in extended.stdout.splitlines() if line.startswith("| a ")]
    steps, cpu = int(row[0].split("|")[2].replace(",", "")), float(row[0].split("|")[4])
    assert steps > 6 and cpu >= float(rows["a"][2]) + 4  # stopped by SIGTERM at the CPU budget, last.pt saved
    assert (folder / "horizon_2.md").exists()
