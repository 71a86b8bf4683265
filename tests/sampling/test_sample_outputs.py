"""`molgen sample --out`: checked before sampling, written whole into a sibling folder and swapped in at the end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molgen.chem.io import read_molecules
from molgen.cli import main
from molgen.sampling import sample_molecules


def _sample(checkpoint, out, *extra: str) -> int:
    return main(["sample", "--checkpoint", str(checkpoint), "-n", "3", "--steps", "2", "--out", str(out),
                 "--grid", "3", "--no-progress", *extra])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture()
def no_sampling(monkeypatch):
    """Make sampling fail loudly: the command must stop before it."""
    import molgen.sampling

    def sample(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(molgen.sampling, "sample", sample)


def test_rerun_replaces_a_folder_of_molgen_outputs(checkpoint, tmp_path):
    out = tmp_path / "samples"
    assert _sample(checkpoint, out, "--chain", "--chain-frames", "3") == 0
    assert (out / "chain.png").exists()
    assert _sample(checkpoint, out, "--seed", "1") == 0  # the README's command, run again
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "molecules.csv", "molecules.sdf", "molecules.xyz",
                                                     "report.html", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["settings"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]  # no temporary sibling left


def test_interrupted_rerun_keeps_the_previous_run(checkpoint, tmp_path, monkeypatch):
    import molgen.chem.draw

    out = tmp_path / "samples"
    assert _sample(checkpoint, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(molgen.chem.draw, "draw_grid", interrupted)  # after molecules.sdf and .xyz are written
    assert _sample(checkpoint, out, "--seed", "1") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old run, whole and alone
    assert json.loads((out / "summary.json").read_text())["settings"]["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples"]


def test_folder_with_other_files_is_refused_before_sampling(checkpoint, tmp_path, capsys, no_sampling):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "molecules.xyz").write_text("")
    assert _sample(checkpoint, out) == 2
    err = _one_line_error(capsys)
    assert f"cannot write {out}: it holds files that molgen did not write (notes.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == ["molecules.xyz", "notes.txt"]


def test_out_dot_never_deletes_the_current_folder(checkpoint, tmp_path, monkeypatch, capsys, no_sampling):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("mine\n")
    assert _sample(checkpoint, ".") == 2
    assert "thesis.tex" in _one_line_error(capsys)
    (tmp_path / "thesis.tex").unlink()
    assert _sample(checkpoint, ".") == 2  # even with nothing in it: the current folder is never replaced
    assert "it is the current folder" in _one_line_error(capsys)
    assert tmp_path.is_dir()


def test_unwritable_out_fails_before_sampling(checkpoint, tmp_path, capsys, no_sampling):
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    assert _sample(checkpoint, blocked / "samples") == 2
    assert _one_line_error(capsys) == (f"molgen: error: cannot write {blocked / 'samples'}: {blocked} is a file, "
                                       "not a folder\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


@pytest.mark.parametrize("sampler, steps", [("ancestral", 100), ("heun", 20)])
def test_summary_records_the_steps_used(checkpoint, tmp_path, sampler, steps):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--sampler", sampler, "--out", str(out),
                 "--grid", "0", "--no-progress", "--seed", "5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["steps"] == steps and summary["settings"]["sampler"] == sampler
    assert summary["settings"]["seed"] == 5 and summary["n_molecules"] == 2
    assert summary["files"] == [str(out / name) for name in ("molecules.sdf", "molecules.xyz", "molecules.csv",
                                                             "report.html")]


def test_chain_draws_molecule_zero_in_output_order(checkpoint, tmp_path, monkeypatch):
    import molgen.chem.draw

    drawn = []
    monkeypatch.setattr(molgen.chem.draw, "draw_chain", lambda path, frames, labels: drawn.append(frames))
    out = tmp_path / "out"
    argv = ["sample", "--checkpoint", str(checkpoint), "-n", "6", "--steps", "3", "--batch-size", "2", "--seed", "2",
            "--chain", "--chain-frames", "3", "--grid", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    molecules = read_molecules(out / "molecules.xyz")
    sizes = [len(types) for _, types in molecules]
    assert sizes[0] > min(sizes)  # molecule 0 is not in the first batch of the size-sorted order
    final_positions, final_types = drawn[0][-1]
    np.testing.assert_array_equal(final_types, molecules[0][1])
    np.testing.assert_allclose(final_positions, molecules[0][0], atol=1e-7)
    assert all(len(types) == sizes[0] for _, types in drawn[0])


def test_chain_picture_has_a_panel_per_frame_and_the_depiction(checkpoint, tmp_path):
    from PIL import Image

    from molgen.chem.draw import PANEL, draw_chain
    from molgen.sampling import chain_labels

    samples = sample_molecules(checkpoint, 2, steps=3, seed=1, chain_frames=3)
    frames = [(frame.positions, frame.atom_types) for frame in samples.chain]
    draw_chain(tmp_path / "chain.png", frames, chain_labels(samples.chain))
    draw_chain(tmp_path / "chain.gif", frames, chain_labels(samples.chain))
    assert Image.open(tmp_path / "chain.png").width == 4 * PANEL[0]  # 3 frames and the 2D depiction
    assert Image.open(tmp_path / "chain.gif").n_frames == 4
