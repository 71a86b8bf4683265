"""`molgen train`: start, refuse to overwrite, resume, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.cli import main

from .helpers import tiny_config


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


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("options, blamed, problem", [
    (["--max-steps", "0"], "--max-steps 0", "train.max_steps must be an integer >= 1, got 0"),
    (["--set", "train.lr=-1"], "--set train.lr=-1", "train.lr must be a finite number > 0"),
    (["--set", f"train.seed={2**64}"], f"--set train.seed={2**64}",
     "train.seed must be an integer from 0 to 2**64 - 1"),
    (["--set", "train.eval_seed=-1"], "--set train.eval_seed=-1", "train.eval_seed must be an integer >= 0"),
    (["--set", "data.batch_size=128"], "--set data.batch_size=128", "data.max_train_molecules must be >="),
    (["--set", "train.device=mps"], "--set train.device=mps",
     "train.device 'mps' is not available here; the devices here are: auto, cpu"),
    (["--run-dir", "x", "--set", "train.speed=1"], "--set train.speed=1", "unknown key(s) in train: ['speed']"),
])
def test_option_errors_blame_the_option_not_the_file(config_file, tmp_path, capsys, options, blamed, problem):
    assert main(["train", str(config_file), *options, "--no-progress"]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"molgen: error: {blamed}: ") and problem in err and str(config_file) not in err
    assert not (tmp_path / "run").exists()


def test_file_errors_blame_the_file(config_file, tmp_path, capsys):
    values = json.loads(config_file.read_text())
    values["train"]["lr"] = -1
    config_file.write_text(json.dumps(values))
    assert main(["train", str(config_file), "--max-steps", "3", "--no-progress"]) == 2
    assert f"molgen: error: {config_file}: train.lr must be" in _one_line(capsys)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"train:\n  lr: \xff\xfe\x00\x01\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# a run config, to be written\n")
    for path, problem in ((binary, "not a text file (byte 13 is not UTF-8)"),
                          (empty, "the config file holds no settings")):
        assert main(["train", str(path), "--no-progress"]) == 2
        assert f"molgen: error: {path}: {problem}" in _one_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="needs a machine without an 8th CUDA device")
def test_an_unavailable_device_names_the_available_ones(config_file, tmp_path, capsys):
    assert main(["train", str(config_file), "--set", "train.device=cuda:7", "--no-progress"]) == 2
    assert "device 'cuda:7' is not available here; the devices here are: auto, cpu" in _one_line(capsys)
    assert not (tmp_path / "run").exists()


def test_threads_and_seed_at_their_limits(config_file, tmp_path, monkeypatch, caplog, capsys):
    """train.threads above the usable cores is capped with a warning; the largest seed trains."""
    from molgen import threads

    monkeypatch.setattr(threads, "affinity_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        with caplog.at_level("WARNING", logger="molgen.threads"):
            assert main(["train", str(config_file), "--set", "train.threads=999", "--set",
                         f"train.seed={2**64 - 1}", "--max-steps", "1", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(before)
    assert [r.getMessage() for r in caplog.records] == ["999 threads asked for, but this process may use 1 core; "
                                                         "using 1"]
    assert ", 1 thread, " in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["train"]["seed"] == 2**64 - 1
