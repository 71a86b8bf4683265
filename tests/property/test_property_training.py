"""Training a property regressor: z_t formed as the diffusion loss forms it, the trainer's resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from molgen.checkpoint import CheckpointError, load_model
from molgen.cli import main
from molgen.config import RunConfig
from molgen.diffusion import PolynomialSchedule, diffusion_loss
from molgen.geometry.centroid import remove_centroid
from molgen.property.checkpoint import load_regressor
from molgen.property.training import PropertyTrainer, regressor_inputs

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_guide_sees_z_t_exactly_as_the_denoiser_does(qm9_splits):
    batch = qm9_splits["valid"].batch([0, 5, 9])
    schedule = PolynomialSchedule(1000, 1e-5)
    t_int = torch.tensor([0, 400, 1000])
    generator = torch.Generator().manual_seed(0)
    eps_x = torch.randn(batch.x.shape, generator=generator)
    eps_x = remove_centroid(eps_x, batch.batch, 3)  # [M, 3]
    noise = (eps_x, torch.randn(batch.x.shape[0], 6, generator=generator))
    seen = {}

    def spy(z_x, z_h, t, layout):
        seen.update(z_x=z_x, z_h=z_h, t=t)
        return torch.zeros_like(z_x), torch.zeros_like(z_h)

    diffusion_loss(spy, schedule, batch, t_int=t_int, noise=noise)
    z_x, z_h, t = regressor_inputs(batch, schedule, t_int, noise)
    for name, value in (("z_x", z_x), ("z_h", z_h), ("t", t)):
        torch.testing.assert_close(value, seen[name], rtol=0, atol=0)
    clean_x, clean_h, zero = regressor_inputs(batch, schedule, t_int, None)
    assert not torch.equal(clean_x, z_x) and float(zero.abs().sum()) == 0.0


def _config(tmp_path, qm9_cache_dir, name="qm9_gap_regressor", **train) -> RunConfig:
    values = yaml.safe_load((REPOSITORY / "configs" / f"{name}.yaml").read_text())
    values["run_dir"], values["data"]["cache_dir"] = str(tmp_path / "run"), str(qm9_cache_dir)
    values["model"]["config"].update(hidden=16, layers=1, rbf=4)
    values["train"].update(eval_every=2, eval_molecules=32, checkpoint_every=2, max_steps=4, lr_decay_steps=4,
                           warmup_molecules=64, **train)
    return RunConfig.from_dict(values)


def _trainer(config, arrays) -> PropertyTrainer:
    trainer = PropertyTrainer(config, arrays)
    trainer.export_molecules = 32
    return trainer


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, qm9_cache_dir, qm9_arrays):
    straight = _trainer(_config(tmp_path / "a", qm9_cache_dir), qm9_arrays)
    straight.run()
    half = _trainer(_config(tmp_path / "b", qm9_cache_dir), qm9_arrays)
    half.run(max_steps=2)
    with pytest.raises(CheckpointError, match="a property regressor's training state, not a generator"):
        load_model(half.last_path)  # molgen sample and evaluate refuse it with one line
    resumed = _trainer(_config(tmp_path / "b", qm9_cache_dir), qm9_arrays)
    resumed.load_checkpoint(half.last_path)
    resumed.run()
    for name, value in straight.ema.module.state_dict().items():
        torch.testing.assert_close(resumed.ema.module.state_dict()[name], value, rtol=0, atol=0)
    loaded = load_regressor(resumed.run_dir / "regressor.pt")
    assert loaded.metadata["steps"] == 4 and loaded.metadata["half"] == "second"
    assert loaded.normalisation.mean == pytest.approx(6858, abs=15)  # D_b's mean gap in meV
    assert [m["step"] for m in resumed.metrics if "val_mae" in m] == [2, 4]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qm9_gap_regressor", "qm9_alpha_evaluator"])
def test_molgen_train_writes_a_regressor(name, tmp_path, qm9_cache_dir, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(tmp_path, qm9_cache_dir, name).to_dict()))
    assert main(["train", str(path), "--max-steps", "1", "--no-progress"]) == 0
    assert "finished at step 1" in capsys.readouterr().out
    loaded = load_regressor(tmp_path / "run" / "regressor.pt")
    assert loaded.metadata["steps"] == 1 and loaded.metadata["validation"]["num_molecules"] == 17_748
    assert loaded.noise_conditional == (name == "qm9_gap_regressor")
    assert main(["train", str(path), "--run-dir", str(tmp_path / "other"), "--data", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a property regressor trains on the QM9 cache" in err
