"""`molgen grow --radial-features`: the grown checkpoint (every set of weights with zero radial columns, a fresh
optimizer, the re-warm-up), training that moves the new columns, and one-line errors."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from molgen.checkpoint import load_checkpoint, load_model
from molgen.cli import main
from molgen.cli_grow import grow_checkpoint
from molgen.config import RunConfig
from molgen.models.grow import RADIAL, Radial
from molgen.train.loop import Trainer

from train.helpers import ToyMolecules, tiny_config  # tests/ is on sys.path

FIXTURE = Path(__file__).parent / "fixtures" / "qm9_ponita_860b5b7.pt"


def test_grow_adds_zero_radial_columns_to_every_set_of_weights(tmp_path, capsys):
    out = tmp_path / "radial.pt"
    assert main(["grow", str(FIXTURE), "--out", str(out), "--radial-features", "6", "--radial-basis", "gaussian",
                 "--radial-cutoff", "4"]) == 0
    original, grown = load_checkpoint(FIXTURE), load_checkpoint(out)
    model = grown["config"]["model"]["config"]
    assert (model["radial_features"], model["radial_basis"], model["radial_cutoff"]) == (6, "gaussian", 4.0)
    for old, new in [(original["model"], grown["model"]), (original["ema"], grown["ema"]),
                     *[(original["emas"][key], grown["emas"][key]) for key in original["emas"]]]:
        assert torch.equal(new[RADIAL], torch.zeros(32, 18)) and set(new) == set(old) | {RADIAL}
        assert all(torch.equal(new[name], tensor) for name, tensor in old.items())
    assert grown["optimizer"]["state"] == {} and grown["rewarmup_start"] == original["molecules"]
    command = capsys.readouterr().out.splitlines()[-1]
    options = shlex.split(command.split("--resume ", 1)[1])[1:]
    assert "model.config.radial_features=6" in options
    assert {"model.config.radial_basis=gaussian", "model.config.radial_cutoff=4.0"} <= set(options)
    assert load_model(out).model.spatial_basis.radial.basis == "gaussian"  # sample and evaluate read it as it is


def test_training_moves_the_radial_columns(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", max_steps=2), ToyMolecules(64))
    trainer.run()
    grown = grow_checkpoint(trainer.state_dict(), 1, 8, radial=Radial(4, "bessel", 5.0), rewarmup=0)
    config = RunConfig.from_dict(grown["config"]).replace({"train.max_steps": 4})
    resumed = Trainer(config, ToyMolecules(64))
    resumed.load_state_dict(grown)
    resumed.run()
    assert resumed.step == 4 and resumed.model.spatial_basis.radial_linear.weight.abs().min() > 0


@pytest.mark.parametrize(("options", "problem"), [
    (["--radial-basis", "gaussian"], "--radial-basis and --radial-cutoff need --radial-features K"),
    (["--radial-features", "4", "--radial-basis", "fourier"], "--radial-basis must be one of bessel, gaussian"),
    (["--radial-features", "0"], "--radial-features must be at least 1, got 0"),
    (["--radial-features", "4", "--radial-cutoff", "0"], "--radial-cutoff must be a distance > 0 in Å, got 0.0"),
])
def test_bad_radial_options_are_one_line_errors(tmp_path, capsys, options, problem):
    out = tmp_path / "grown.pt"
    assert main(["grow", str(FIXTURE), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and not out.exists()
