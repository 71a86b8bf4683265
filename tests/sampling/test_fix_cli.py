"""`molgen sample --fix` and `sample_molecules(fixed=...)` on the shipped checkpoint (a few molecules, few steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molgen.checkpoint import SHIPPED_CHECKPOINT
from molgen.chem.io import read_molecules, write_xyz
from molgen.cli import main
from molgen.diffusion import NodeCountDistribution
from molgen.diffusion.samplers import atom_counts
from molgen.errors import MolgenError
from molgen.fragment import load_fragment
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


def test_sample_fix_writes_molecules_around_the_fragment(fragment_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["sample", "--fix", str(fragment_file), "-n", "3", "--num-atoms", "9", "--resample", "1", "--steps", "3",
            "--out", str(out), "--no-progress", "--seed", "1"]
    assert main(args) == 0
    capsys.readouterr()
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
    extra = {"num_atoms": ["--num-atoms", "3"], "heun": ["--sampler", "heun"]}.get(case, [])
    out = tmp_path / "out"
    fix = [] if case == "resample_alone" else ["--fix", str(fragment)]
    argv = ["sample", *fix, *extra, "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(argv + (["--resample", "1"] if case == "resample_alone" else [])) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists()


def test_api_rejects_bad_molecules():
    with pytest.raises(MolgenError, match="unknown atom type"):
        load_fragment((np.zeros((2, 3)), ["C", "Cl"]))
    with pytest.raises(MolgenError, match="NaN or inf"):
        load_fragment((np.full((1, 3), np.nan), [1]))
    with pytest.raises(MolgenError, match="2 positions but 1 atom types"):
        load_fragment((np.zeros((2, 3)), [1]))
