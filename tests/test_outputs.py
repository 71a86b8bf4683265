"""Unwritable output locations: one `molgen: error:` line naming the path and the reason, exit 2, nothing written.

A path under a regular file stands for an unwritable location (the tests may run as root, which ignores
permission bits).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from train.helpers import tiny_config  # tests/ is on sys.path (pytest rootdir-based imports)

from molgen.chem.io import write_molecules
from molgen.cli import main
from molgen.outputs import OutputError, check_output_file, check_output_folder, writing

WATER = (np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]]), np.array([3, 0, 0]))


@pytest.fixture()
def blocked(tmp_path) -> Path:
    """A regular file where the outputs' folder should be."""
    path = tmp_path / "blocked"
    path.write_text("a file, not a folder\n")
    return path


def _config_file(tmp_path: Path, cache_dir: Path) -> Path:
    values = tiny_config(tmp_path / "run", max_steps=1).to_dict()
    values["data"]["cache_dir"] = str(cache_dir)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(values))
    return path


def _commands(tmp_path: Path, blocked: Path, cache_dir: Path) -> dict[str, tuple[list[str], Path]]:
    """Each command that writes an output, pointed at a location under `blocked`: (argv, the output path)."""
    molecules = tmp_path / "water.xyz"
    write_molecules(molecules, [WATER])
    cache = ["--cache-dir", str(cache_dir)]
    return {
        "evaluate files --json": (["evaluate", str(molecules), "--novelty", "no", "--json", str(blocked / "m.json")],
                                  blocked / "m.json"),
        "evaluate --qm9-split --json": (["evaluate", "--qm9-split", "test", "--novelty", "no", *cache, "--json",
                                         str(blocked / "t.json")], blocked / "t.json"),
        "train --run-dir": (["train", str(_config_file(tmp_path, cache_dir)), "--run-dir", str(blocked / "run"),
                             "--max-steps", "1", "--no-progress"], blocked / "run"),
        "data export": (["data", "export", str(blocked / "x.npz"), *cache], blocked / "x.npz"),
    }


@pytest.mark.parametrize("command", ["evaluate files --json", "evaluate --qm9-split --json", "train --run-dir",
                                     "data export"])  # the cache folder: tests/data/test_cache_access.py
def test_unwritable_output_is_one_line_error(command, tmp_path, blocked, qm9_cache_dir, capsys):
    argv, output = _commands(tmp_path, blocked, qm9_cache_dir)[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"molgen: error: cannot write {output}: {blocked} is a file, not a folder\n"
    assert "metric" not in captured.out  # it failed before the work, not after
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert blocked.read_text() == "a file, not a folder\n"


def test_json_that_becomes_unwritable_during_the_work_is_one_line_error(tmp_path, blocked, monkeypatch, capsys):
    import molgen.cli

    molecules = tmp_path / "water.xyz"
    write_molecules(molecules, [WATER])
    monkeypatch.setattr(molgen.cli, "check_output_file", lambda path: None)  # as if the file appeared meanwhile
    assert main(["evaluate", str(molecules), "--novelty", "no", "--json", str(blocked / "m.json")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err == f"molgen: error: cannot write {blocked / 'm.json'}: {blocked} is a file, not a folder"


def test_output_checks_create_nothing(tmp_path, blocked):
    check_output_folder(tmp_path / "new" / "deeper")
    check_output_file(tmp_path / "new" / "file.json")
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputError, match="it is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        check_output_folder(blocked)


def test_writing_names_the_file_and_the_reason(tmp_path):
    target = tmp_path / "out" / "last.pt"
    with pytest.raises(OutputError) as raised:
        with writing(tmp_path / "out"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
    assert str(raised.value) == f"cannot write {target}: no space left on device"
    with pytest.raises(FileNotFoundError):  # an input elsewhere is not an output problem
        with writing(tmp_path / "out"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "input.xyz"))
