"""`molgen grow`: the grown training checkpoint, its copied channels in training, one-line errors, end to end."""

from __future__ import annotations

import errno
import json
import shlex
from pathlib import Path

import pytest
import torch

import molgen.checkpoint as checkpoint_module
from molgen.checkpoint import load_checkpoint, load_model, save_checkpoint
from molgen.cli import main
from molgen.cli_grow import grow_checkpoint
from molgen.config import RunConfig
from molgen.models.grow import NOISY, PonitaGrowth
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.train.loop import Trainer

from models.test_grow import _inputs  # tests/ is on sys.path (pytest rootdir-based imports)
from train.helpers import TINY_PONITA, ToyMolecules, tiny_config

FIXTURE = Path(__file__).parent / "fixtures" / "qm9_ponita_860b5b7.pt"


def _trained_payload(tmp_path) -> dict:
    """The state of the tiny PONITA (1 layer x 8 channels) after 3 steps: its EMA differs from its weights."""
    trainer = Trainer(tiny_config(tmp_path / "run", max_steps=3), ToyMolecules(64))
    trainer.run()
    return trainer.state_dict()


def _outputs(state: dict, config: PonitaConfig, inputs):
    model = Ponita(config).double().eval()
    model.load_state_dict(state)
    return model(*inputs)


@pytest.mark.slow
def test_the_grown_checkpoint_continues_training_from_a_fresh_optimizer(tmp_path):
    payload = _trained_payload(tmp_path)
    grown = grow_checkpoint(payload, layers=2, hidden=16, noise_scale=0.0, rewarmup=640)
    old, new = PonitaConfig(**TINY_PONITA), PonitaConfig(**{**TINY_PONITA, "layers": 2, "hidden": 16})
    assert grown["config"]["model"]["config"] == new.to_dict() and grown["config"]["train"]["rewarmup_molecules"] == 640
    assert grown["optimizer"]["state"] == {} and grown["rewarmup_start"] == payload["molecules"] == 48
    inputs = _inputs((5, 9, 3))
    for key in ("model", "ema"):  # every set of weights grown, each computing what it did
        for a, b in zip(_outputs(payload[key], old, inputs), _outputs(grown[key], new, inputs)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for a, b in zip(_outputs(payload["emas"]["0.9"], old, inputs), _outputs(grown["emas"]["0.9"], new, inputs)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    config = RunConfig.from_dict(grown["config"]).replace({"train.max_steps": 5})
    trainer = Trainer(config, ToyMolecules(64))
    trainer.load_state_dict(grown)
    assert trainer.lr_schedule(trainer.molecules) == pytest.approx(config.train.lr * 16 / 640)  # warming up again
    trainer.run()
    assert trainer.step == 5 and len(trainer.optimizer.state) == len(trainer.parameters)


def _copy_spread(states: dict, k: int = 2) -> float:
    """How far apart the k copies of each unit are in the noisy (incoming) weights, relative to their size."""
    deviation = total = 0.0
    for name, tensor in states.items():
        if NOISY.fullmatch(name):
            copies = tensor.double().view(-1, k, *tensor.shape[1:])  # [units, k, ...]
            deviation += (copies - copies.mean(dim=1, keepdim=True)).square().sum().item()
            total += copies.square().sum().item()
    return (deviation / total) ** 0.5


@pytest.mark.parametrize("noise_scale", [0.0, 1e-2])
def test_copied_channels_come_apart_in_training_only_with_the_noise(tmp_path, noise_scale):
    """AdamW is scale-invariant per parameter: copies with equal incoming weights would take equal steps forever
    (up to rounding), however their outgoing weights are split. The noise makes their 50 steps differ."""
    torch.manual_seed(0)
    model = Ponita(PonitaConfig(**TINY_PONITA))
    growth = PonitaGrowth.plan(model.config, model.state_dict(), 1, 16, noise_scale, seed=0)
    grown = Ponita(growth.new)
    grown.load_state_dict(growth.apply(model.state_dict()))
    config = tiny_config(tmp_path, max_steps=50, lr=3e-3).replace({"model.config.hidden": 16})
    trainer = Trainer(config, ToyMolecules(64), model=grown)
    before = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    steps = _copy_spread({name: after[name] - before[name] for name in before})
    if noise_scale == 0:
        assert steps < 1e-6  # fp32 rounding alone
    else:
        assert steps > 1e-3  # measured 5e-3 to 9e-3 over seeds
        assert _copy_spread(after) > 0.8 * _copy_spread(before)  # and they are not pulled back together


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("molgen: error: "), err
    return err


@pytest.mark.parametrize(("options", "problem"), [
    (["--hidden", "96"], "--hidden 96 is not a multiple of the model's width 64"),
    (["--layers", "4"], "--layers 4 is fewer than the model's 5 layers"),
    ([], "nothing to grow"),
    (["--layers", "6", "--noise", "nan"], "--noise must be a number >= 0"),
])
def test_sizes_that_are_no_growth_are_one_line_errors(tmp_path, capsys, options, problem):
    out = tmp_path / "grown.pt"
    assert main(["grow", str(FIXTURE), "--out", str(out), *options]) == 2
    assert problem in _one_line_error(capsys) and not out.exists()


def test_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    payload = load_checkpoint(FIXTURE)
    config = RunConfig.from_dict(payload["config"]).replace({"model.name": "egnn",
                                                             "model.config": {"hidden": 8, "layers": 1}})
    weights = config.model.build().state_dict()
    save_checkpoint({**payload, "config": config.to_dict(), "model": weights, "ema": weights,
                     "emas": {"0.999": weights}}, tmp_path / "egnn.pt")
    assert main(["grow", str(tmp_path / "egnn.pt"), "--out", str(tmp_path / "grown.pt"), "--layers", "2"]) == 2
    assert "not a PONITA checkpoint (its model is 'egnn')" in _one_line_error(capsys)


def test_an_unwritable_out_is_refused_before_the_work(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["grow", str(FIXTURE), "--out", str(tmp_path / "file" / "grown.pt"), "--layers", "6"]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)


def test_a_failed_write_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "grown.pt"
    out.write_bytes(b"the previous file")

    def disk_full(payload, handle):
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    assert main(["grow", str(FIXTURE), "--out", str(out), "--layers", "6"]) == 2
    assert "no space left on device" in _one_line_error(capsys)
    assert out.read_bytes() == b"the previous file" and sorted(p.name for p in tmp_path.iterdir()) == ["grown.pt"]


@pytest.mark.slow
def test_grow_the_shipped_lineage_then_sample_and_resume(qm9_cache_dir, tmp_path, capsys):
    grown_path = tmp_path / "grown.pt"
    assert main(["grow", str(FIXTURE), "--out", str(grown_path), "--layers", "6", "--hidden", "128"]) == 0
    command = capsys.readouterr().out.splitlines()[-1]
    assert command.startswith("continue with: molgen train CONFIG --resume")
    original, grown = load_model(FIXTURE), load_model(grown_path)
    assert (grown.config.model.config["layers"], grown.config.model.config["hidden"]) == (6, 128)
    inputs = [x.float() if x.is_floating_point() else x for x in _inputs((9, 12, 7))[:3]] + [_inputs((9, 12, 7))[3]]
    with torch.no_grad():
        for a, b in zip(original.model(*inputs), grown.model(*inputs)):
            assert ((a - b).norm() / a.norm()).item() < 1e-3  # the noise's second-order change: about 1e-4

    assert main(["sample", "--checkpoint", str(grown_path), "-n", "2", "--steps", "5", "--num-atoms", "9",
                 "--out", str(tmp_path / "samples"), "--no-progress"]) == 0
    assert (tmp_path / "samples" / "molecules.xyz").read_text().count("\n") > 9

    payload = load_checkpoint(FIXTURE)
    config = payload["config"]  # the run's config, as its config.json holds it
    config["data"]["cache_dir"], config["run_dir"] = str(qm9_cache_dir), str(tmp_path / "run")
    config["train"].update(max_steps=payload["step"] + 1, eval_every=0, sample_every=0, precision="fp32")
    (tmp_path / "config.json").write_text(json.dumps(config))
    options = shlex.split(command.split("--resume ", 1)[1])[1:]  # the --set options it printed
    assert main(["train", str(tmp_path / "config.json"), "--resume", str(grown_path), *options, "--no-progress"]) == 0
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed["step"] == payload["step"] + 1 and resumed["config"]["model"]["config"]["hidden"] == 128
