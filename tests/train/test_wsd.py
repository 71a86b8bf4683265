"""Warmup-stable-decay: schedules in molecules seen, EMAs at several decays, the format-2 migration, the cooldown
branch and its shipped file, resuming with another batch size, and the prefetched batches."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.checkpoint import load_checkpoint, load_model, save_checkpoint
from molgen.data.stats import node_count_histogram
from molgen.errors import MolgenError
from molgen.train.ema import EMASet
from molgen.train.loop import Trainer
from molgen.train.schedule import LearningRateSchedule, build_schedule, ema_decay_per_step

from .helpers import assert_same_state, tiny_config

DECAYS = [0.9, 0.95, 0.99]


def trainer_for(qm9_splits, run_dir, valid=False, prefetch=None, **train) -> Trainer:
    batch_size = train.pop("batch_size", 16)
    config = tiny_config(run_dir, **{"ema_decays": DECAYS, **train}).replace({"data.batch_size": batch_size})
    return Trainer(config, qm9_splits["train"], qm9_splits["valid"] if valid else None,
                   node_histogram=node_count_histogram(qm9_splits["train"]), prefetch=prefetch)


def test_schedules_count_molecules():
    small = LearningRateSchedule(peak=1e-3, batch_size=64, warmup_molecules=64 * 500)
    large = LearningRateSchedule(peak=1e-3, batch_size=1024, warmup_molecules=64 * 500)
    assert [small(64 * s) for s in range(3)] == [1e-3 * (s + 1) / 500 for s in range(3)]  # the step formula
    assert small(1024 * 7 - 64) == large(1024 * 6) and small(10**7) == large(10**7) == 1e-3
    cool = LearningRateSchedule(peak=1e-3, batch_size=64, min_lr=1e-5, cooldown_start=6400, cooldown_molecules=640)
    lrs = [cool(6400 + 64 * s) for s in range(10)]
    assert lrs[0] < 1e-3 and lrs[-1] == pytest.approx(1e-5) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert cool.cooldown_end() == 7040
    rewarm = LearningRateSchedule(peak=1e-3, batch_size=64, rewarmup_start=6400, rewarmup_molecules=256)
    assert [rewarm(6400 + 64 * s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert ema_decay_per_step(0.999, 64) == 0.999 and ema_decay_per_step(0.999, 256) == pytest.approx(0.999**4)


def test_cosine_in_molecules_equals_the_step_formula(tmp_path):
    train = tiny_config(tmp_path, warmup_steps=3, lr_decay="cosine", min_lr=1e-5, max_steps=20).train
    schedule = build_schedule(train, 16)
    for step in range(25):
        expected = (train.lr * (step + 1) / 3 if step < 3 else train.min_lr + 0.5 * (train.lr - train.min_lr) * (
            1 + math.cos(math.pi * min((step - 3) / 17, 1.0))))
        assert schedule(16 * step) == expected


def test_ema_decays_are_per_64_molecules():
    model = torch.nn.Linear(2, 1)
    emas = EMASet(model, (0.99, 0.999), batch_size=256)
    assert emas.averages["0.99"].decay == pytest.approx(0.99**4) and emas.primary is emas.averages["0.99"]
    state = {"0.99": {k: v + 1 for k, v in model.state_dict().items()}}
    assert emas.load_state_dict(state) == ["0.999"]  # the missing EMA starts from the nearest stored one
    assert_same_state(emas.averages["0.999"].state_dict(), state["0.99"])


def test_format2_checkpoint_migrates_to_the_set_of_emas(qm9_splits, tmp_path):
    old = trainer_for(qm9_splits, tmp_path / "old", ema_decays=[0.9])
    old.run(max_steps=2)
    payload = load_checkpoint(tmp_path / "old" / "last.pt")
    for key in ("emas", "molecules", "rewarmup_start", "cooldown_start"):
        del payload[key]
    payload["config"]["train"]["ema_decay"] = payload["config"]["train"].pop("ema_decays")[0] ** (16 / 64)
    payload["format_version"] = 2
    save_checkpoint(payload, tmp_path / "format2.pt")
    migrated = load_checkpoint(tmp_path / "format2.pt")
    assert migrated["molecules"] == 32 and migrated["config"]["train"]["ema_decays"] == [pytest.approx(0.9)]
    resumed = trainer_for(qm9_splits, tmp_path / "new")
    resumed.load_checkpoint(tmp_path / "format2.pt")
    for average in resumed.emas.averages.values():
        assert_same_state(average.state_dict(), old.ema.state_dict())
    assert resumed.molecules == 32 and resumed.run(max_steps=3).step == 3


@pytest.mark.slow
def test_cooldown_branch_ships_the_best_ema_and_the_main_branch_resumes(qm9_splits, tmp_path):
    main = trainer_for(qm9_splits, tmp_path / "main", min_lr=1e-5)
    main.run(max_steps=3)
    with pytest.raises(MolgenError, match="run folder of its own"):
        trainer_for(qm9_splits, tmp_path / "main", cooldown_molecules=32).load_checkpoint(tmp_path / "main/last.pt")
    branch = trainer_for(qm9_splits, tmp_path / "cool", valid=True, cooldown_molecules=32, min_lr=1e-5,
                         eval_molecules=16)
    branch.load_checkpoint(tmp_path / "main" / "last.pt")
    result = branch.run()
    assert result.step == 5 and result.metrics == [] and branch.lr_schedule(branch.molecules - 16) == 1e-5
    shipped = load_checkpoint(tmp_path / "cool" / "shipped.pt")
    report = shipped["shipped"]
    assert set(report["val_nll_by_ema"]) == {"0.9", "0.95", "0.99"} and report["branch_end_molecules"] == 80
    assert report["val_nll"] == min(report["val_nll_by_ema"].values())
    assert_same_state(shipped["ema"], branch.emas.averages[repr(report["ema_decay"])].state_dict())
    assert load_model(tmp_path / "cool" / "shipped.pt").step == 3
    with pytest.raises(MolgenError, match="cooldown branch"):
        trainer_for(qm9_splits, tmp_path / "x").load_checkpoint(tmp_path / "cool" / "last.pt")
    # the main branch goes on from the shipped file exactly as from its own last.pt
    from_last, from_shipped = (trainer_for(qm9_splits, tmp_path / name) for name in ("a", "b"))
    from_last.load_checkpoint(tmp_path / "main" / "last.pt")
    from_shipped.load_checkpoint(tmp_path / "cool" / "shipped.pt")
    from_last.run(max_steps=5), from_shipped.run(max_steps=5)
    assert_same_state(from_last.state_dict()["emas"], from_shipped.state_dict()["emas"])
    assert_same_state(from_last.model.state_dict(), from_shipped.model.state_dict())


def test_a_new_batch_size_keeps_the_epoch_fraction_and_warms_up_again(qm9_splits, tmp_path):
    trainer_for(qm9_splits, tmp_path, max_steps=3).run()
    resumed = trainer_for(qm9_splits, tmp_path, batch_size=32, lr=2e-3, rewarmup_molecules=128)
    resumed.load_checkpoint(tmp_path / "last.pt")
    assert (resumed.batch_in_epoch, resumed.molecules, resumed.lr_schedule.rewarmup_start) == (1, 48, 48)
    assert resumed.train_step().lr == pytest.approx(2e-3 * 32 / 128)
    assert resumed.emas.averages["0.9"].decay == pytest.approx(0.9**0.5)


def test_prefetched_batches_give_the_same_weights(qm9_splits, tmp_path):
    plain = trainer_for(qm9_splits, tmp_path / "a", max_steps=6)
    ahead = trainer_for(qm9_splits, tmp_path / "b", max_steps=6, prefetch=True)
    plain.run(), ahead.run()
    assert ahead.prefetcher is not None and plain.prefetcher is None
    assert_same_state(plain.model.state_dict(), ahead.model.state_dict())
    assert_same_state(plain.emas.state_dict(), ahead.emas.state_dict())


def test_the_shipped_checkpoint_resumes_as_the_main_branch(qm9_splits, tmp_path):
    from pathlib import Path

    from molgen.config import load_config

    root = Path(__file__).resolve().parents[2]
    payload = load_checkpoint(root / "checkpoints" / "qm9_ponita_cpu.pt")  # older files migrate on load
    assert payload["molecules"] >= payload["step"] > 0 and payload["cooldown_start"] is None
    config = load_config(root / "configs" / "qm9_ponita_cpu.yaml").replace(
        {"run_dir": str(tmp_path), "data.max_train_molecules": 64, "train.threads": 1})
    trainer = Trainer(config, qm9_splits["train"], node_histogram=node_count_histogram(qm9_splits["train"]))
    trainer.load_state_dict(payload)
    assert set(trainer.emas.averages) == {"0.999", "0.9995", "0.9999"} and trainer.step == payload["step"]
    assert trainer.lr_schedule(trainer.molecules) == config.train.lr  # the main branch: constant at the peak
    assert trainer.lr_schedule.cooldown_start is None
