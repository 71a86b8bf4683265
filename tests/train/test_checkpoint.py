"""Checkpoint files: atomic writes, clear errors for damaged, newer or mismatched files, migration of format 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgen.checkpoint import CHECKPOINT_FORMAT, REQUIRED_KEYS, load_checkpoint, save_checkpoint
from molgen.config import RunConfig
from molgen.data.stats import node_count_histogram
from molgen.errors import MolgenError
from molgen.train.loop import Trainer
import molgen.checkpoint as checkpoint_module

from .helpers import ToyMolecules, assert_same_state, tiny_config

FORMAT0 = Path(__file__).resolve().parent / "data" / "checkpoint_format0.pt"


@pytest.fixture()
def saved(qm9_splits, tmp_path) -> Trainer:
    """A tiny trainer after 2 steps, saved to tmp_path/last.pt."""
    histogram = node_count_histogram(qm9_splits["train"])
    trainer = Trainer(tiny_config(tmp_path), qm9_splits["train"], node_histogram=histogram)
    trainer.run(max_steps=2)
    return trainer


def test_checkpoint_holds_everything(saved, tmp_path):
    payload = load_checkpoint(tmp_path / "last.pt")
    assert set(REQUIRED_KEYS) <= set(payload) and payload["format_version"] == CHECKPOINT_FORMAT
    assert payload["step"] == 2 and payload["config"] == saved.config.to_dict()
    assert payload["node_histogram"].shape == (30,) and int(payload["node_histogram"].sum()) == 100_000
    assert len(payload["clip_history"]) == 3 and payload["metrics"] == []
    assert_same_state(payload["ema"], saved.ema.state_dict())


def test_failed_save_leaves_the_previous_file(saved, tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        saved.save_checkpoint()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "last.pt", "log.csv"]  # no temp files


def test_truncated_file(saved, tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MolgenError, match=r"last\.pt.*truncated or corrupt") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(MolgenError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newer_format_and_foreign_files(tmp_path):
    save_checkpoint({"format_version": CHECKPOINT_FORMAT + 1, "step": 0}, tmp_path / "new.pt")
    with pytest.raises(MolgenError, match=rf"new\.pt.*format {CHECKPOINT_FORMAT + 1}, newer"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({"state_dict": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(MolgenError, match=r"other\.pt.*not a molgen training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint({"format_version": CHECKPOINT_FORMAT, "step": 0}, tmp_path / "partial.pt")
    with pytest.raises(MolgenError, match=r"partial\.pt.*missing entries"):
        load_checkpoint(tmp_path / "partial.pt")


def test_pickled_code_is_refused(tmp_path):
    torch.save({"format_version": 1, "hook": print}, tmp_path / "code.pt")  # would run code if unpickled freely
    with pytest.raises(MolgenError, match=r"code\.pt: not a molgen checkpoint \(it holds Python objects") as raised:
        load_checkpoint(tmp_path / "code.pt")
    assert "weights_only" not in str(raised.value)


def test_config_mismatch_on_resume(saved, qm9_splits, tmp_path):
    other = tiny_config(tmp_path).replace({"model.config.hidden": 16})
    trainer = Trainer(other, qm9_splits["train"])
    with pytest.raises(MolgenError, match=r"last\.pt.*config mismatch.*model\.config\.hidden: 8 -> 16"):
        trainer.load_checkpoint(tmp_path / "last.pt")
    # training settings may change; they are reported
    longer = Trainer(tiny_config(tmp_path, max_steps=10, lr=5e-4), qm9_splits["train"])
    changes = longer.load_checkpoint(tmp_path / "last.pt")
    assert changes == ["train.lr: 0.001 -> 0.0005", "train.max_steps: 6 -> 10"]


def test_format0_file_migrates_and_loads(tmp_path):
    assert torch.load(FORMAT0, weights_only=True)["format_version"] == 0
    payload = load_checkpoint(FORMAT0)
    assert payload["format_version"] == CHECKPOINT_FORMAT and "model_state" not in payload
    assert payload["metrics"] == [] and payload["best_nll"] is None and payload["skipped_steps"] == 0
    config = RunConfig.from_dict(payload["config"]).replace({"run_dir": str(tmp_path)})
    trainer = Trainer(config, ToyMolecules(32))
    trainer.load_checkpoint(FORMAT0)
    assert trainer.step == 2
    assert_same_state(trainer.model.state_dict(), payload["model"])
    trainer.train_step()  # and training goes on
    assert trainer.step == 3
