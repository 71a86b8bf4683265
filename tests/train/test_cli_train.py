"""`molgen train`: start, refuse to overwrite, resume, one-line errors; scripts/train.py wraps it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from molgen.checkpoint import load_checkpoint
from molgen.cli import main

from .helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def config_file(qm9_cache_dir, tmp_path) -> Path:
    values = tiny_config(tmp_path / "run", max_steps=2).to_dict()
    values["data"]["cache_dir"] = str(qm9_cache_dir)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(values))
    return path


@pytest.mark.slow
def test_train_then_resume(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(config_file), "--no-progress"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["step"] == 2
    assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 2

    assert main(["train", str(config_file), "--no-progress"]) == 2  # an existing run is not overwritten
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err

    assert main(["train", str(config_file), "--resume", "--max-steps", "3", "--set", "train.lr=5e-4",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "train.lr: 0.001 -> 0.0005" in out
    assert load_checkpoint(run / "last.pt")["step"] == 3

    other = tmp_path / "other"
    assert main(["train", str(config_file), "--run-dir", str(other), "--max-steps", "1", "--no-progress"]) == 0
    assert load_checkpoint(other / "last.pt")["step"] == 1


@pytest.mark.slow
def test_errors_are_one_line(config_file, tmp_path, capsys):
    assert main(["train", str(config_file), "--set", "train.lr=-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.lr" in err
    assert main(["train", str(config_file), "--set", "train.speed=1"]) == 2
    assert "unknown key(s) in train: ['speed']" in capsys.readouterr().err
    assert main(["train", str(config_file), "--resume", str(tmp_path / "nothing.pt")]) == 2
    assert "nothing.pt: no such file" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err

    assert main(["train", str(config_file), "--max-steps", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", str(config_file), "--resume", "--set", "model.config.hidden=16", "--no-progress"]) == 2
    assert "config mismatch" in capsys.readouterr().err


@pytest.mark.slow
def test_script_wraps_the_command():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--help"], capture_output=True,
                            text=True, check=True)
    assert "--resume" in result.stdout and "--set KEY=VALUE" in result.stdout


@pytest.mark.parametrize("signum, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_stops_training_with_the_shell_exit_code(config_file, tmp_path, monkeypatch, capsys, signum, code):
    import os
    import signal

    from molgen.train.loop import Trainer

    train_step = Trainer.train_step

    def step_then_signal(self):
        result = train_step(self)
        os.kill(os.getpid(), getattr(signal, signum))
        return result

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    assert main(["train", str(config_file), "--max-steps", "5", "--no-progress"]) == code
    assert "stopped at step 1" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
