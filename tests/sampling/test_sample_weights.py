"""`molgen sample` samples with a checkpoint's EMA weights unless `--raw-weights` is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from molgen.checkpoint import load_checkpoint
from molgen.chem.io import read_molecules
from molgen.cli import main
from molgen.sampling import sample_molecules

# Trained 18,000 steps with EMA decay 0.999: its EMA differs from its raw weights (the golden file's do not).
FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9_ponita_860b5b7.pt"
SETTINGS = {"num_molecules": 3, "steps": 3, "seed": 0, "device": "cpu", "precision": "fp32", "threads": 1}


def _cli_molecules(tmp_path: Path, *extra: str) -> list:
    out = tmp_path / ("raw" if extra else "default")
    args = ["sample", "--checkpoint", str(FIXTURE), "-n", "3", "--steps", "3", "--seed", "0", "--device", "cpu",
            "--precision", "fp32", "--threads", "1", "--grid", "0", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 0
    return read_molecules(out / "molecules.xyz")  # positions with 8 decimals


def _assert_same(written: list, sampled: list) -> None:
    assert len(written) == len(sampled)
    for (x_written, t_written), (x_sampled, t_sampled) in zip(written, sampled):
        np.testing.assert_array_equal(t_written, t_sampled)
        np.testing.assert_allclose(x_written, x_sampled, rtol=0, atol=1e-7)


def test_the_fixture_has_an_ema_unlike_its_weights():
    payload = load_checkpoint(FIXTURE)
    gaps = [(payload["ema"][k] - w).abs().max().item() for k, w in payload["model"].items() if w.is_floating_point()]
    assert max(gaps) > 0.05


def test_cli_samples_with_the_ema_unless_raw_weights(tmp_path, capsys):
    ema = sample_molecules(FIXTURE, use_ema=True, **SETTINGS).molecules
    raw = sample_molecules(FIXTURE, use_ema=False, **SETTINGS).molecules
    _assert_same(_cli_molecules(tmp_path), ema)
    assert "EMA weights" in capsys.readouterr().out
    _assert_same(_cli_molecules(tmp_path, "--raw-weights"), raw)
    assert "raw weights" in capsys.readouterr().out
    # The same seed draws the same atom counts and noise; the two weight sets move the atoms apart.
    assert [len(types) for _, types in ema] == [len(types) for _, types in raw]
    gaps = [float(np.abs(a - b).mean()) for (a, _), (b, _) in zip(ema, raw)]
    assert min(gaps) > 0.1, gaps  # Å per coordinate; the same weights would give 0
