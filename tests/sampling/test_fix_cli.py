"""`molgen sample --fix` and `sample_molecules(fixed=...)` on the shipped checkpoint (a few molecules, few steps)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from molgen.checkpoint import SHIPPED_CHECKPOINT
from molgen.chem.io import read_molecules, write_xyz
from molgen.choices import MAX_RESAMPLE
from molgen.cli import main
from molgen.diffusion import NodeCountDistribution
from molgen.diffusion.samplers import atom_counts
from molgen.errors import MolgenError
from molgen.chem.io import read_fragment
from molgen.settings import fragment_warnings
from molgen.sampling import sample_molecules

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="the shipped checkpoint is missing")

# a C=C-O unit far from the origin, so a result in the wrong frame shows
FRAGMENT = (np.array([[4.0, 1.0, -2.0], [5.33, 1.0, -2.0], [6.05, 2.15, -2.0]]), np.array([1, 1, 3]))


@pytest.fixture()
def fragment_file(tmp_path):
    path = tmp_path / "fragment.xyz"
    write_xyz(path, [FRAGMENT])
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1, err
    return err


def test_sample_fix_writes_molecules_around_the_fragment(fragment_file, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    args = ["sample", "--fix", str(fragment_file), "-n", "3", "--num-atoms", "9", "--resample", "1", "--steps", "3",
            "--out", str(out), "--no-progress", "--seed", "1"]
    assert main(args) == 0
    capsys.readouterr()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # a sound fragment: no warning
    for name in ("molecules.xyz", "molecules.sdf"):
        molecules = read_molecules(out / name)
        assert len(molecules) == 3
        for x, types in molecules:
            assert len(types) == 9 and types[:3].tolist() == [1, 1, 3]
            np.testing.assert_allclose(x[:3], FRAGMENT[0], atol=1e-3)
    assert (out / "grid.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fixed"] == {"fragment": str(fragment_file), "atoms": 3} and summary["settings"]["resample"] == 1


def test_api_takes_a_molecule_and_repeats_for_a_seed():
    positions, _ = FRAGMENT
    first, again = (sample_molecules(num_molecules=2, steps=2, seed=5, device="cpu", fixed=(positions, ["C", "C", "O"]))
                    for _ in range(2))
    for (x, types), (x_again, _) in zip(first.molecules, again.molecules):
        assert types[:3].tolist() == [1, 1, 3] and len(types) > 3
        np.testing.assert_allclose(x[:3], positions, atol=1e-4)
        np.testing.assert_array_equal(x, x_again)


def test_default_counts_exceed_the_fragment():
    nodes = NodeCountDistribution(torch.tensor([0, 0, 0, 5, 1, 0, 2, 9.0]))
    counts = atom_counts(nodes, 200, torch.Generator().manual_seed(0), above=5)  # a fragment of 5 atoms
    assert set(counts.tolist()) == {6, 7}


def _write(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("unknown_element", "unknown element 'Xx'"),
    ("nan", "non-finite coordinate"),
    ("empty", "no molecules"),
    ("two_molecules", "holds 2 molecules"),
    ("too_large", "the model's largest molecule has 29"),
    ("num_atoms", "--num-atoms 3 must exceed the fragment's 3 atoms"),
    ("heun", "needs the ancestral sampler"),
    ("resample_alone", "--resample applies only"),
    ("resample_too_many", f"--resample must lie in 0..{MAX_RESAMPLE} round trips per step, got 1000000000"),
])
def test_bad_fragment_requests_are_one_line_errors(case, message, fragment_file, tmp_path, capsys):
    files = {
        "unknown_element": lambda: _write(tmp_path / "x.xyz", "1\n\nXx 0 0 0\n"),
        "nan": lambda: _write(tmp_path / "x.xyz", "1\n\nC nan 0 0\n"),
        "empty": lambda: _write(tmp_path / "x.xyz", ""),
        "two_molecules": lambda: _write(tmp_path / "x.xyz", "1\n\nC 0 0 0\n1\n\nO 0 0 0\n"),
        "too_large": lambda: _write(tmp_path / "x.xyz", "30\n\n" + "".join(f"C {i} 0 0\n" for i in range(30))),
    }
    fragment = files[case]() if case in files else fragment_file
    extra = {"num_atoms": ["--num-atoms", "3"], "heun": ["--sampler", "heun"],
             "resample_too_many": ["--resample", "1000000000"]}.get(case, [])
    out = tmp_path / "out"
    fix = [] if case == "resample_alone" else ["--fix", str(fragment)]
    argv = ["sample", *fix, *extra, "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(argv + (["--resample", "1"] if case == "resample_alone" else [])) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists()


def test_api_rejects_bad_molecules():
    with pytest.raises(MolgenError, match="^the fragment: unknown element 'Cl'; molgen knows H, C, N, O, F$"):
        read_fragment((np.zeros((2, 3)), ["C", "Cl"]))
    with pytest.raises(MolgenError, match="^the fragment: positions hold NaN or inf$"):
        read_fragment((np.full((1, 3), np.nan), [1]))
    with pytest.raises(MolgenError, match=r"^the fragment: atom_types must have shape \[2\], got \(1,\)$"):
        read_fragment((np.zeros((2, 3)), [1]))
    with pytest.raises(MolgenError, match=r"^the fragment is not a \(positions, atom_types\) pair$"):
        read_fragment(None)
    positions, types = read_fragment((np.zeros((2, 3)), ["C", "O"]))
    assert positions.dtype == np.float64 and types.tolist() == [1, 3]


def _fragment(positions, symbols):
    return read_fragment((np.asarray(positions, dtype=float), symbols))


@pytest.mark.parametrize(("positions", "symbols", "expected"), [
    (FRAGMENT[0], ["C", "C", "O"], []),
    ([[0, 0, 0]], ["C"], []),
    ([[0, 0, 0], [0.1, 0, 0], [1.4, 0, 0], [1.4, 0.3, 0]], ["C", "C", "O", "H"],
     ["the fragment's atoms 1 (C) and 2 (C) are 0.100 Å apart, closer than 0.5 Å: overlapping atoms (2 such pairs)"]),
    ([[0, 0, 0], [0.74, 0, 0]], ["H", "H"], ["the fragment has no heavy atom, only hydrogen"]),
    ([[0, 0, 0]], ["H"], ["the fragment has no heavy atom, only hydrogen"]),
    (100 * FRAGMENT[0], ["C", "C", "O"],
     ["no two of the fragment's 3 atoms are within bonding distance (the closest are 133 Å apart): are its "
      "coordinates in Å?"]),
    ([[0, 0, 0], [1.7, 0, 0]], ["C", "C"], ["no two of the fragment's 2 atoms are within bonding distance (the "
                                            "closest are 1.7 Å apart): are its coordinates in Å?"]),  # C-C < 1.64 Å
    ([[0, 0, 0], [0, 0, 90]], ["H", "H"], ["the fragment has no heavy atom, only hydrogen",
                                           "no two of the fragment's 2 atoms are within bonding distance (the "
                                           "closest are 90 Å apart): are its coordinates in Å?"]),
])
def test_fragment_warnings_name_each_fault(positions, symbols, expected):
    assert fragment_warnings(_fragment(positions, symbols)) == expected


def test_a_fragment_in_pm_warns_and_sampling_goes_on(tmp_path, capsys, caplog):
    path = tmp_path / "pm.xyz"
    write_xyz(path, [(100 * FRAGMENT[0], FRAGMENT[1])])  # the unit mistake of the report: coordinates x 100
    out = tmp_path / "out"
    assert main(["sample", "--fix", str(path), "-n", "1", "--steps", "1", "--grid", "0", "--out", str(out),
                 "--no-progress"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["no two of the fragment's 3 atoms are within bonding distance (the closest are 133 Å apart): "
                        "are its coordinates in Å?"]
    assert "valid:" in capsys.readouterr().out and len(read_molecules(out / "molecules.xyz")) == 1


def test_help_names_the_resample_maximum(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--help"])
    assert exit_.value.code == 0
    assert f"at most {MAX_RESAMPLE})" in " ".join(capsys.readouterr().out.split())


def test_the_progress_bar_counts_every_round_trip(monkeypatch):
    """The bar's total is (R + 1) network calls per step and batch, and sampling ticks it exactly that often."""
    import molgen.sampling

    bars = []

    class Recording(molgen.sampling.tqdm):
        def close(self):  # tqdm closes on leaving the `with` and again when collected
            bars.append((self.total, self.n, self.unit))
            super().close()

    monkeypatch.setattr(molgen.sampling, "tqdm", Recording)
    sample_molecules(num_molecules=3, batch_size=2, steps=4, resample=2, device="cpu", progress=True,
                     fixed=(FRAGMENT[0], ["C", "C", "O"]))
    assert set(bars) == {(2 * 4 * 3, 2 * 4 * 3, "call")}  # 2 batches, 4 steps, R + 1 = 3 network calls per step


@pytest.mark.slow
def test_warnings_are_one_stderr_line_each(tmp_path):
    path = tmp_path / "hydrogens.xyz"
    write_xyz(path, [(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 90.0]]), np.array([0, 0]))])
    command = [sys.executable, "-m", "molgen", "sample", "--fix", str(path), "-n", "1", "--steps", "1", "--grid", "0",
               "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("WARNING:")] == [
        "WARNING: the fragment has no heavy atom, only hydrogen",
        "WARNING: no two of the fragment's 2 atoms are within bonding distance (the closest are 90 Å apart): are its "
        "coordinates in Å?"]
    assert (tmp_path / "out" / "molecules.xyz").is_file()
