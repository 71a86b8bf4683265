"""The `molgen` command: help, scoring files and QM9 splits, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molgen.chem.io import write_molecules
from molgen.cli import main

WATER = (np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]]), np.array([3, 0, 0]))
METHANE = (
    np.array([[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629], [-0.629, 0.629, -0.629],
              [0.629, -0.629, -0.629]]),
    np.array([1, 0, 0, 0, 0]),
)


@pytest.mark.slow
def test_help_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "molgen", "--help"], capture_output=True, text=True, check=True)
    assert "evaluate" in result.stdout and "data" in result.stdout


def test_evaluate_files_with_json(tmp_path, capsys):
    write_molecules(tmp_path / "a.xyz", [WATER, METHANE])
    write_molecules(tmp_path / "b.sdf", [WATER])
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(tmp_path / "a.xyz"), str(tmp_path / "b.sdf"), "--novelty", "no", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 molecules" in printed and "mol stability     100.00" in printed
    metrics = json.loads(out.read_text())
    assert metrics["n_molecules"] == 3 and metrics["mol_stable"] == 1.0 and metrics["n_unique"] == 2
    assert metrics["uniqueness"] == 2 / 3 and metrics["novelty"] is None


def test_bad_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\ncomment\nC 0 0 0\nXx 1 0 0\n")
    assert main(["evaluate", str(bad), "--novelty", "no", "--json", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.xyz, line 4" in err and "Xx" in err
    assert not (tmp_path / "m.json").exists()
    assert main(["evaluate", str(tmp_path / "missing.xyz"), "--novelty", "no"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_files_or_split_not_both(tmp_path, capsys):
    assert main(["evaluate", "--novelty", "no"]) == 2
    assert "give molecule files, --qm9-split or --checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_qm9_split(qm9_cache_dir, tmp_path, capsys):
    out = tmp_path / "test.json"
    code = main(["evaluate", "--qm9-split", "test", "--novelty", "no", "--cache-dir", str(qm9_cache_dir),
                 "--json", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["n_molecules"] == 13_083
    assert "atom stability     99.34" in capsys.readouterr().out


def test_data_prepare_prints_statistics(qm9_cache_dir, capsys):
    assert main(["data", "prepare", "--cache-dir", str(qm9_cache_dir)]) == 0
    printed = capsys.readouterr().out
    assert "train 100,000, valid 17,748, test 13,083" in printed and "F 2,323 (0.13%)" in printed


def test_help_shows_each_default_once(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    texts = {}
    for command in ("data prepare", "data export", "sample", "evaluate", "train"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        texts[command] = capsys.readouterr().out
        assert "(default: None)" not in texts[command] and "%%" not in texts[command], command
        assert not [line for line in texts[command].splitlines() if line.count("default") > 1], command
    assert "95% confidence intervals" in texts["evaluate"]
    assert "(default: ancestral 100, heun 20, dpmpp2m 50)" in texts["sample"]
    assert "dpmpp2m: DPM-Solver++(2M) on the probability-flow ODE" in texts["sample"]
    assert "heun only: Karras" in texts["sample"] and "(ancestral sampler only)" in texts["sample"]


def test_sdf_with_fewer_atoms_than_its_counts_line_names_the_atom_count(tmp_path, capsys):
    short = tmp_path / "short.sdf"
    short.write_text("water\n  molgen\n\n  3  1  0  0  0  0  0  0  0  0999 V2000\n"
                     "    0.0000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
                     "    0.9572    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
                     "  1  2  1  0\nM  END\n$$$$\n")
    assert main(["evaluate", str(short), "--novelty", "no"]) == 2
    assert capsys.readouterr().err == (f"molgen: error: {short}, line 4: the counts line says 3 atoms but only 2 "
                                       "atom lines follow (line 7 is a bond line)\n")


def test_first_use_says_what_it_builds(qm9_arrays, tmp_path, monkeypatch, capsys):
    import molgen.chem.metrics
    import molgen.data.qm9

    monkeypatch.setattr(molgen.data.qm9, "read_qm9_csvs", lambda paths, progress=True: qm9_arrays)
    monkeypatch.setattr(molgen.chem.metrics, "training_smiles", lambda molecules, progress=False: {"O"})
    write_molecules(tmp_path / "water.xyz", [WATER])
    cache = tmp_path / "empty-cache"
    assert main(["evaluate", str(tmp_path / "water.xyz"), "--cache-dir", str(cache)]) == 0
    err = capsys.readouterr().err
    assert f"building the QM9 cache {cache / 'qm9_v1.npz'}" in err
    assert "computing EDM's training SMILES for novelty" in err
    assert main(["evaluate", str(tmp_path / "water.xyz"), "--cache-dir", str(cache)]) == 0
    assert "building" not in capsys.readouterr().err  # once


@pytest.mark.parametrize("argv, command, problem", [
    (["sample", "--seed", "-1"], "sample", "argument --seed: a seed must lie in 0 ... 2**64 - 1"),
    (["sample", "--steps", "many"], "sample", "argument --steps: expected an integer, got 'many'"),
    (["evaluate", "--novelty", "maybe"], "evaluate", "argument --novelty: invalid choice: 'maybe'"),
    (["train"], "train", "the following arguments are required: config"),
    (["data", "prepare", "--rebuilt"], "", "unrecognized arguments: --rebuilt"),
    (["fly"], "", "argument COMMAND: invalid choice: 'fly'"),
])
def test_option_errors_are_one_line_that_points_to_help(capsys, argv, command, problem):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    prog = f"molgen {command}".strip()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{prog}: error: {problem}") and err.endswith(f" (see {prog} --help)\n")


_IMPORTS_AFTER = """
import sys
from pathlib import Path
from molgen.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch imported" if "torch" in sys.modules else "no torch")
"""


def test_help_and_version_import_no_torch():
    """`molgen --help`, `molgen COMMAND --help` and `molgen --version` answer without importing torch (1-2 s)."""
    for argv in (["--help"], ["--version"], ["sample", "--help"], ["evaluate", "--help"], ["train", "--help"],
                 ["data", "export", "--help"]):
        result = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER, *argv], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and "molgen" in result.stdout, result.stderr
        assert result.stdout.splitlines()[-1] == "no torch", argv


def test_the_readme_examples_outputs_are_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout, or no git")
    for path in ("samples/molecules.sdf", "samples_benzene/molecules.sdf"):
        result = subprocess.run(["git", "-C", str(root), "check-ignore", "--no-index", "-q", path],
                                capture_output=True, text=True)
        if result.returncode not in (0, 1):  # no git, or git refuses the checkout (another owner)
            pytest.skip(f"git check-ignore cannot run here: {result.stderr.strip()}")
        assert result.returncode == 0, f"{path} is not ignored"
