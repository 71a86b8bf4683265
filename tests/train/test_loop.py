"""The trainer: learning, bitwise resume, the NaN guard, clipping inside a step, evaluation and the log."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
from torch import nn

from molgen.checkpoint import load_checkpoint
from molgen.checkpoint import load_model as load_denoiser
from molgen.data.stats import node_count_histogram
from molgen.errors import MolgenError
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.train.clipping import AdaptiveClipper, global_grad_norm
from molgen.train.loop import Trainer
from molgen.train.randomness import per_sample_noise, sample_seed
from molgen.train.step import NonFiniteError

from .helpers import TINY_PONITA, assert_same_state, tiny_config


def trainer_for(qm9_splits, run_dir, model=None, valid=False, **train) -> Trainer:
    histogram = node_count_histogram(qm9_splits["train"])
    return Trainer(tiny_config(run_dir, **train), qm9_splits["train"], qm9_splits["valid"] if valid else None,
                   model=model, node_histogram=histogram)


def test_per_sample_randomness_depends_only_on_seed_step_and_index():
    t_a, eps_a = per_sample_noise(0, 5, [10, 20, 30], [3, 4, 5], 1000)
    t_b, eps_b = per_sample_noise(0, 5, [30, 10], [5, 3], 1000)
    assert t_a[0] == t_b[1] and t_a[2] == t_b[0]
    assert torch.equal(eps_a[:3], eps_b[5:]) and torch.equal(eps_a[7:], eps_b[:5])
    assert eps_a.shape == (12, 9) and 0 <= int(t_a.min()) and int(t_a.max()) <= 1000
    seeds = {sample_seed(s, step, i) for s in range(2) for step in range(3) for i in range(3)}
    assert len(seeds) == 18 and max(seeds) < 2**63


def test_loss_falls(qm9_splits, tmp_path):
    trainer = trainer_for(qm9_splits, tmp_path, lr=3e-3, max_steps=40)
    losses = [trainer.train_step().loss for _ in range(40)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.85 * first, (first, last)
    assert trainer.epoch == 9 and trainer.batch_in_epoch == 4  # 4 batches of 16 per epoch


def test_resume_is_bitwise(qm9_splits, tmp_path):
    schedule = {"warmup_steps": 2, "lr_decay": "cosine", "min_lr": 1e-4, "max_steps": 6}
    straight = trainer_for(qm9_splits, tmp_path / "a", **schedule)
    assert straight.run().step == 6

    first = trainer_for(qm9_splits, tmp_path / "b", **schedule)
    first.run(max_steps=3)
    resumed = trainer_for(qm9_splits, tmp_path / "b", **schedule)
    assert resumed.load_checkpoint(tmp_path / "b" / "last.pt") == []
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (3, 0, 3)
    resumed.run()

    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (6, 1, 2)  # crossed an epoch boundary
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same_state(straight.ema.state_dict(), resumed.ema.state_dict(), "ema")
    assert_same_state(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")
    assert straight.clipper.history == resumed.clipper.history
    assert not torch.equal(straight.model.embed.weight, straight.ema.module.embed.weight)
    # the log of the resumed run has each step once
    with open(tmp_path / "b" / "log.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2, 3, 4, 5, 6]


def test_log_rows_after_the_checkpoint_are_dropped_on_resume(qm9_splits, tmp_path):
    trainer_for(qm9_splits, tmp_path, max_steps=4).run(max_steps=2)
    with open(tmp_path / "log.csv", "a") as handle:  # a step logged after the last checkpoint, then a crash
        handle.write("train,3,0,0.5,1,0,0,0.001,10,,,,,,,1,0\n")
    resumed = trainer_for(qm9_splits, tmp_path, max_steps=4)
    resumed.load_checkpoint(tmp_path / "last.pt")
    resumed.run()
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4] and rows[2]["loss"] != "0.5"


def test_clipping_inside_a_step(qm9_splits, tmp_path):
    trainer = trainer_for(qm9_splits, tmp_path)
    trainer.clipper = AdaptiveClipper([1e-3])
    result = trainer.train_step()
    assert result.clipped and result.threshold == pytest.approx(1.5e-3) and result.grad_norm > 1.5e-3
    assert trainer.clipper.history == [1e-3, pytest.approx(1.5e-3)]
    # the step used the clipped gradients (still in .grad until the next step)
    assert float(global_grad_norm(trainer.parameters)) == pytest.approx(1.5e-3, rel=1e-4)


class NaNOnCalls(nn.Module):
    """A denoiser that returns NaN on chosen forward calls (0-based)."""

    def __init__(self, inner: nn.Module, nan_calls) -> None:
        super().__init__()
        self.inner, self.nan_calls, self.calls = inner, set(nan_calls), 0

    def forward(self, z_x, z_h, t, layout):
        eps_x, eps_h = self.inner(z_x, z_h, t, layout)
        call, self.calls = self.calls, self.calls + 1
        return eps_x, eps_h * float("nan") if call in self.nan_calls else eps_h


def test_nonfinite_step_is_skipped(qm9_splits, tmp_path):
    model = NaNOnCalls(Ponita(PonitaConfig(**TINY_PONITA)), nan_calls={2})
    trainer = trainer_for(qm9_splits, tmp_path, model=model)
    trainer.train_step(), trainer.train_step()
    before = copy.deepcopy((trainer.model.state_dict(), trainer.ema.state_dict(), trainer.optimizer.state_dict(),
                            trainer.clipper.history))
    result = trainer.train_step()
    assert result.skipped and result.loss != result.loss  # NaN
    assert_same_state(before, (trainer.model.state_dict(), trainer.ema.state_dict(), trainer.optimizer.state_dict(),
                               trainer.clipper.history))
    assert (trainer.consecutive_nonfinite, trainer.skipped_steps, trainer.step) == (1, 1, 3)
    assert not trainer.train_step().skipped and trainer.consecutive_nonfinite == 0 and trainer.skipped_steps == 1


def test_too_many_nonfinite_steps_stop_with_the_checkpoint_intact(qm9_splits, tmp_path):
    model = NaNOnCalls(Ponita(PonitaConfig(**TINY_PONITA)), nan_calls=range(4, 100))
    trainer = trainer_for(qm9_splits, tmp_path, model=model, checkpoint_every=1, max_consecutive_nonfinite=3,
                          max_steps=20)
    with pytest.raises(MolgenError, match="3 consecutive steps") as caught:
        trainer.run()
    assert isinstance(caught.value, NonFiniteError) and "last.pt" in str(caught.value)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["step"] == 4 and saved["consecutive_nonfinite"] == 0  # the state after the last good step
    assert_same_state(saved["model"], trainer.model.state_dict(), "model")


def test_evaluation_sampling_and_best_checkpoint(qm9_splits, tmp_path):
    trainer = trainer_for(qm9_splits, tmp_path, valid=True, max_steps=4, eval_every=2, eval_molecules=24,
                          sample_every=4, sample_count=6, sample_steps=2, sample_batch_size=4)
    result = trainer.run()
    evals = [m for m in result.metrics if m["kind"] == "eval"]
    samples = [m for m in result.metrics if m["kind"] == "sample"]
    assert [m["step"] for m in evals] == [2, 4] and all(m["num_molecules"] == 24 for m in evals)
    assert len(samples) == 1 and samples[0]["num_molecules"] == 6 and 0 <= samples[0]["atom_stable"] <= 1
    assert result.best_nll == min(m["val_nll"] for m in evals)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["best_nll"] == result.best_nll and best["step"] in (2, 4)
    # the same EMA weights and the fixed subset and seed give the same NLL again
    assert trainer.evaluate()["val_nll"] == evals[-1]["val_nll"]
    loaded = load_denoiser(tmp_path / "last.pt")
    assert_same_state(loaded.model.state_dict(), trainer.ema.state_dict(), "ema")
    assert loaded.step == 4 and len(loaded.metrics) == 3 and not loaded.model.training
    with open(tmp_path / "log.csv") as handle:
        kinds = [row["kind"] for row in csv.DictReader(handle)]
    assert kinds == ["train", "train", "eval", "train", "train", "eval", "sample"]
    assert (tmp_path / "config.json").exists()


def test_sampling_is_skipped_without_rdkit(qm9_splits, tmp_path, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "molgen.chem.metrics", None)  # import fails as if RDKit were missing
    trainer = trainer_for(qm9_splits, tmp_path, sample_every=1, max_steps=1)
    with caplog.at_level("WARNING", logger="molgen.train"):
        result = trainer.run()
    assert result.metrics == [] and "RDKit is not available" in caplog.text


class SignalOnCall(nn.Module):
    """A denoiser that sends this process a signal during a chosen forward call."""

    def __init__(self, inner: nn.Module, call: int, signum: int) -> None:
        super().__init__()
        self.inner, self.call, self.signum, self.calls = inner, call, signum, 0

    def forward(self, z_x, z_h, t, layout):
        import os

        if self.calls == self.call:
            os.kill(os.getpid(), self.signum)
        self.calls += 1
        return self.inner(z_x, z_h, t, layout)


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_signal_saves_after_the_current_step(qm9_splits, tmp_path, signum):
    import signal

    model = SignalOnCall(Ponita(PonitaConfig(**TINY_PONITA)), call=2, signum=getattr(signal, signum))
    handler = signal.getsignal(signal.SIGINT)
    trainer = trainer_for(qm9_splits, tmp_path, model=model, max_steps=10)
    result = trainer.run()
    assert result.interrupted and result.step == 3
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
