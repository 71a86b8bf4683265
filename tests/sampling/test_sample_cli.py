"""`molgen sample`, `molgen evaluate --checkpoint` and the sampling API, on a tiny checkpoint made here."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from molgen.batch import size_batches
from molgen.chem.io import read_molecules
from molgen.cli import main
from molgen.errors import MolgenError
from molgen.evaluation import wilson_interval
from molgen.sampling import SampleSettings, sample_molecules


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("molgen: error: ") and err.count("\n") == 1, err
    return err


def test_sample_writes_every_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["sample", "--checkpoint", str(checkpoint), "-n", "5", "--steps", "3", "--out", str(out), "--chain",
            "--chain-frames", "4", "--batch-size", "3", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "5 molecules" in printed and str(out / "grid.png") in printed
    sdf, xyz = read_molecules(out / "molecules.sdf"), read_molecules(out / "molecules.xyz")
    assert len(sdf) == len(xyz) == 5
    for (x_sdf, t_sdf), (x_xyz, t_xyz) in zip(sdf, xyz):
        np.testing.assert_array_equal(t_sdf, t_xyz)
        np.testing.assert_allclose(x_sdf, x_xyz, atol=1e-4)  # SDF keeps 4 decimals
    for name, magic in (("grid.png", b"\x89PNG"), ("chain.png", b"\x89PNG"), ("chain.gif", b"GIF8")):
        assert (out / name).read_bytes().startswith(magic), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_molecules"] == 5 and summary["settings"]["steps"] == 3 and summary["checkpoint_step"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    assert main(["evaluate", str(out / "molecules.xyz"), "--novelty", "no"]) == 0  # the files score as usual
    assert "5 molecules" in capsys.readouterr().out


def test_evaluate_checkpoint_table_and_json(checkpoint, qm9_cache_dir, tmp_path, capsys):
    report = tmp_path / "eval.json"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--num-samples", "6", "--steps", "2", "--nll-molecules",
            "20", "--cache-dir", str(qm9_cache_dir), "--novelty", "no", "--json", str(report), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "95% CI" in printed and "test NLL" in printed
    result = json.loads(report.read_text())
    assert result["n_molecules"] == 6 and result["test_nll"]["num_molecules"] == 20
    assert math.isfinite(result["test_nll"]["mean"]) and result["seconds_per_molecule"] > 0
    low, high = result["intervals_95"]["validity"]
    assert low <= result["validity"] <= high


def test_same_seed_same_molecules(checkpoint):
    first = sample_molecules(checkpoint, 4, steps=2, seed=3, device="cpu")
    again = sample_molecules(checkpoint, 4, steps=2, seed=3, device="cpu")
    other = sample_molecules(checkpoint, 4, steps=2, seed=4, device="cpu")
    for (x1, t1), (x2, t2) in zip(first.molecules, again.molecules):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(t1, t2)
    assert any(len(a[1]) != len(b[1]) or not np.array_equal(a[0], b[0])
               for a, b in zip(first.molecules, other.molecules))


def test_heun_churn_adds_noise_and_stays_reproducible(checkpoint):
    """Churn draws fresh noise in the Heun steps: other molecules than the deterministic ODE from the same seed,
    the same ones again for the same seed."""
    plain = sample_molecules(checkpoint, 3, sampler="heun", steps=3, seed=5, device="cpu")
    churned = sample_molecules(checkpoint, 3, sampler="heun", steps=3, seed=5, device="cpu", churn=5.0)
    again = sample_molecules(checkpoint, 3, sampler="heun", steps=3, seed=5, device="cpu", churn=5.0)
    assert churned.settings.churn == 5.0
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(plain.molecules, churned.molecules))
    for (x1, t1), (x2, t2) in zip(churned.molecules, again.molecules):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(t1, t2)


def test_api_returns_rdkit_molecules_and_chain(checkpoint):
    samples = sample_molecules(checkpoint, 3, sampler="ancestral", steps=4, num_atoms=7, chain_frames=3)
    mols = samples.rdkit_molecules()
    assert [m.GetNumAtoms() for m in mols] == [7, 7, 7]
    assert all(m.GetNumConformers() == 1 and m.GetConformer().Is3D() for m in mols)
    np.testing.assert_allclose(mols[0].GetConformer().GetPositions(), samples.molecules[0][0])
    assert len(samples.chain) == 3 and samples.chain[-1].t == 0.0
    np.testing.assert_array_equal(samples.chain[-1].positions, samples.molecules[0][0])
    assert samples.chain[0].t > samples.chain[1].t > 0


def test_batches_group_similar_sizes():
    counts = torch.tensor([9, 3, 7, 3, 9, 5])
    batches = size_batches(counts, 4)
    assert [counts[b].tolist() for b in batches] == [[3, 3, 5, 7], [9, 9]]


def test_wilson_interval_golden_values():
    low, high = wilson_interval(0, 20)  # x = 0: upper bound z^2 / (n + z^2)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (20 + 1.959964**2), rel=1e-6)
    assert wilson_interval(8, 20) == pytest.approx((0.218806, 0.613419), abs=2e-6)  # worked by hand
    assert wilson_interval(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize("args, message", [
    (["-n", "0"], "must be at least 1"),
    (["-n", "-3"], "must be at least 1"),
    (["--steps", "0"], "must be at least 1"),
    (["--batch-size", "0"], "must be at least 1"),
])
def test_impossible_arguments_are_usage_errors(checkpoint, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--checkpoint", str(checkpoint), "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_unknown_sampler_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--sampler", "euler"])
    assert "invalid choice: 'euler'" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--num-atoms", "28"], "28 atoms"),  # QM9 has no molecule of 28 atoms
    (["--num-atoms", "40"], "40 atoms"),
    (["--sampler", "ancestral", "--steps", "1001"], "at most T = 1000"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nonsense"], "device"),
    (["--churn", "1"], "churn applies to the heun sampler only"),
    (["--sampler", "heun", "--churn", "-1"], "churn must be a finite number >= 0"),
])
def test_bad_sampling_requests_are_one_line_errors(checkpoint, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress", *args]) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists()


def test_bad_checkpoints_are_one_line_errors(checkpoint, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    newer = tmp_path / "newer.pt"
    payload = torch.load(checkpoint, weights_only=True)
    torch.save({**payload, "format_version": 99}, newer)
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    pickled_module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled_module)
    cases = [(tmp_path / "missing.pt", "no such file"), (truncated, "truncated or corrupt"),
             (newer, "newer than this molgen reads"), (random_bytes, "not a molgen checkpoint"),
             (pickled_module, "not a molgen checkpoint")]
    for path, message in cases:
        out = tmp_path / "out"
        assert main(["sample", "--checkpoint", str(path), "--out", str(out), "--no-progress"]) == 2
        err = _one_line_error(capsys)
        assert message in err and "weights_only" not in err
        assert main(["evaluate", "--checkpoint", str(path), "--novelty", "no", "--no-progress"]) == 2
        assert message in _one_line_error(capsys)
        assert not out.exists()


def test_missing_shipped_checkpoint_is_explained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOLGEN_CHECKPOINT", str(tmp_path / "nowhere.pt"))
    assert main(["sample", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "nowhere.pt" in _one_line_error(capsys)


def test_interrupted_sampling_writes_nothing(checkpoint, tmp_path, monkeypatch, capsys):
    import molgen.sampling

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(molgen.sampling, "sample", interrupted)
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 130
    assert not out.exists()


def test_interrupted_writing_leaves_no_folder(checkpoint, tmp_path, monkeypatch):
    import molgen.chem.draw

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(molgen.chem.draw, "draw_grid", interrupted)
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "3", "--steps", "2", "--out", str(out),
                 "--no-progress"]) == 130
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary sibling


def test_settings_check_messages():
    with pytest.raises(MolgenError, match="unknown sampler"):
        SampleSettings(sampler="euler").check()
    with pytest.raises(MolgenError, match="at least 1"):
        SampleSettings(num_molecules=0).check()


@pytest.mark.slow
def test_sampling_needs_no_qm9_data(checkpoint, tmp_path, environment_without):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "molgen", "sample", "--checkpoint", str(checkpoint), "-n", "3", "--steps", "2",
               "--out", str(out), "--no-progress"]
    result = subprocess.run(command, env=environment_without("qm9pack"), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert len(read_molecules(out / "molecules.sdf")) == 3
