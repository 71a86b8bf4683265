"""`molgen sample` and `molgen evaluate --checkpoint` at the edges of their options: seeds, devices, thread
counts, checkpoint paths and output folders; each bad one is one `molgen: error:` line, exit 2, nothing written."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from molgen import threads
from molgen.chem.io import read_molecules
from molgen.choices import MAX_SEED
from molgen.cli import main
from molgen.errors import MolgenError
from molgen.sampling import SampleSettings

UNAVAILABLE = [name for name in ("mps", "xpu", "meta", "cuda:7") if not name.startswith("cuda")
               or torch.cuda.device_count() < 8]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1, err
    return err


def _usage_error(capsys, command: str) -> str:
    """The one line of an option error: the problem and where to read more, no usage block."""
    err = capsys.readouterr().err
    assert err.startswith(f"molgen {command}: error: ") and err.count("\n") == 1, err
    assert err.endswith(f"(see molgen {command} --help)\n") and "usage:" not in err
    return err


def _sample(checkpoint, out, *options: str) -> list[str]:
    return ["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--grid", "0", "--out", str(out),
            "--no-progress", *options]


@pytest.mark.parametrize("seed", ["-1", str(MAX_SEED + 1), str(2**70), "1.5"])
def test_seeds_outside_torch_range_are_refused(checkpoint, tmp_path, capsys, seed):
    for command, argv in (("sample", _sample(checkpoint, tmp_path / "out", "--seed", seed)),
                          ("evaluate", ["evaluate", "--checkpoint", str(checkpoint), "--seed", seed])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "--seed" in _usage_error(capsys, command)
    assert not (tmp_path / "out").exists()


def test_the_largest_seed_samples_and_scores(checkpoint, qm9_cache_dir, tmp_path, capsys):
    """2^64 - 1 is torch's largest seed: it samples other molecules than seed 0, and seeds the test NLL."""
    assert main(_sample(checkpoint, tmp_path / "top", "--seed", str(MAX_SEED))) == 0
    assert main(_sample(checkpoint, tmp_path / "zero", "--seed", "0")) == 0
    assert json.loads((tmp_path / "top" / "summary.json").read_text())["settings"]["seed"] == MAX_SEED
    top, zero = (read_molecules(tmp_path / name / "molecules.xyz") for name in ("top", "zero"))
    assert any(len(a[1]) != len(b[1]) or not np.allclose(a[0], b[0]) for a, b in zip(top, zero))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--num-samples", "2", "--steps", "2", "--seed",
                 str(MAX_SEED), "--nll-molecules", "4", "--cache-dir", str(qm9_cache_dir), "--novelty", "no",
                 "--no-progress"]) == 0
    assert "test NLL" in capsys.readouterr().out


@pytest.mark.parametrize("device", UNAVAILABLE)
def test_unavailable_devices_name_the_available_ones(checkpoint, tmp_path, capsys, device):
    out = tmp_path / "out"
    for argv in (_sample(checkpoint, out, "--device", device),
                 ["evaluate", "--checkpoint", str(checkpoint), "--device", device, "--novelty", "no"]):
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert f"device {device!r} is not available here" in err and "auto, cpu" in err
        assert "mps" not in err.replace(repr(device), "")  # no claim of MPS support
    assert not out.exists()


def test_threads_beyond_the_usable_cores_are_capped(checkpoint, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setattr(threads, "affinity_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING, logger="molgen.threads"):
            assert main(_sample(checkpoint, tmp_path / "out", "--threads", "999")) == 0
    finally:
        torch.set_num_threads(before)
    assert [r.getMessage() for r in caplog.records] == [
        "999 threads asked for, but this process may use 1 core; using 1"]
    assert ", 1 thread, " in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert ", 1 thread, " in summary["compute"]


def test_checkpoint_folders_and_a_bad_environment_variable_are_named(checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    for argv in (_sample(tmp_path, out), ["evaluate", "--checkpoint", str(tmp_path), "--novelty", "no"]):
        assert main(argv) == 2
        assert f"checkpoint {tmp_path}: it is a folder, not a checkpoint file" in _one_line_error(capsys)
    for value, problem in ((str(tmp_path / "nowhere.pt"), "no such file"), (str(tmp_path), "a folder")):
        monkeypatch.setenv("MOLGEN_CHECKPOINT", value)
        assert main(["sample", "--out", str(out), "--no-progress"]) == 2
        err = _one_line_error(capsys)
        assert f"MOLGEN_CHECKPOINT={value}: {problem}" in err and "shipped" in err
    monkeypatch.setenv("MOLGEN_CHECKPOINT", str(checkpoint))
    assert main(["sample", "-n", "1", "--steps", "1", "--grid", "0", "--out", str(out), "--no-progress"]) == 0
    assert str(checkpoint) in capsys.readouterr().out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_output_in_a_virtual_file_system_names_the_problem(checkpoint, capsys):
    with pytest.raises(OSError):  # the folder exists, yet no file can be made in it
        open("/proc/self/molgen-probe", "w").close()
    assert main(_sample(checkpoint, "/proc/self")) == 2
    err = _one_line_error(capsys)
    assert "/proc/self accepts no new files" in err and "no such file" not in err


def test_the_api_refuses_seeds_outside_torch_range():
    SampleSettings(seed=MAX_SEED).check()
    for seed in (-1, MAX_SEED + 1, 1.0, True):
        with pytest.raises(MolgenError, match="a seed must"):
            SampleSettings(seed=seed).check()
