"""Importance-sampled t (train.time_sampling = "importance"): the p / q estimator, the proposal's fit and draws, the
trainer's use of p / q, bitwise resume with the proposal in the checkpoint, and the loss weightings' independence
from the validation NLL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgen.config import TrainConfig, load_config
from molgen.diffusion import diffusion_loss
from molgen.train.loop import Trainer
from molgen.train.randomness import per_sample_uniforms
from molgen.train.timesampling import UNIFORM_FLOOR, ImportanceSampler

from .helpers import ToyMolecules, assert_same_state, tiny_config

HISTOGRAM = torch.tensor([0, 0, 0, 1, 1, 1, 1] + [0] * 23)  # 3 to 6 atoms, as ToyMolecules
T = 1000
SKEWED = 0.05 + 400.0 * torch.exp(-torch.arange(T + 1, dtype=torch.float64) / 15)  # [T + 1] like T L_t: 400 ... 0.05


def _fitted(table: torch.Tensor, history: int = 3) -> ImportanceSampler:
    """A sampler that has seen each t's loss `history` times, as L_t * (1, 1.5, 0.5) (E[L^2] = 3.5 / 3 L_t^2)."""
    sampler = ImportanceSampler(T, history, refit_every=1)
    t_all = torch.arange(T + 1)
    for factor in (1.0, 1.5, 0.5)[:history]:
        sampler.record(t_all, factor * table, step=0)
    return sampler


def test_the_proposal_is_the_root_mean_square_loss_with_a_uniform_floor():
    """q_t = 0.99 L_t / sum L + 0.01 / (T + 1): sqrt(E[L_t^2]) is sqrt(3.5 / 3) L_t, a common factor."""
    q = _fitted(SKEWED).proposal
    want = (1 - UNIFORM_FLOOR) * SKEWED / SKEWED.sum() + UNIFORM_FLOOR / (T + 1)
    torch.testing.assert_close(q, want, rtol=1e-12, atol=0)
    assert abs(float(q.sum()) - 1) < 1e-12 and float(q.max() / q.min()) > 50


def test_the_p_over_q_estimator_equals_the_uniform_objective_exactly():
    """sum_t q_t (p_t / q_t) L_t = (1 / (T + 1)) sum_t L_t, an exact sum over every t (no Monte Carlo), for a
    proposal fitted to one skewed table and applied to another."""
    sampler = _fitted(SKEWED)
    t_all = torch.arange(T + 1)
    other = 1.0 + torch.sin(t_all.to(torch.float64)) ** 2  # [T + 1]
    for table in (SKEWED, other):
        estimate = (sampler.proposal * sampler.weights(t_all) * table).sum()
        torch.testing.assert_close(estimate, table.mean(), rtol=1e-12, atol=0)
    assert not torch.allclose(sampler.weights(t_all), torch.ones(T + 1, dtype=torch.float64))


def test_the_proposal_stays_uniform_until_every_t_has_its_history():
    sampler = ImportanceSampler(T, 2, refit_every=1)
    sampler.record(torch.arange(T + 1), SKEWED, step=0)
    sampler.record(torch.arange(T), SKEWED[:T], step=1)  # t = T has one loss of two
    assert torch.equal(sampler.proposal, torch.full((T + 1,), 1 / (T + 1), dtype=torch.float64))
    assert torch.equal(sampler.weights(torch.arange(T + 1)), torch.ones(T + 1, dtype=torch.float64))
    sampler.record(torch.tensor([T]), SKEWED[T:], step=2)
    assert float(sampler.proposal.max() / sampler.proposal.min()) > 50


def test_refits_come_after_every_rth_step_from_the_last_k_losses():
    sampler = ImportanceSampler(T, 1, refit_every=3)
    sampler.record(torch.arange(T + 1), SKEWED, step=0)
    sampler.record(torch.arange(T + 1), SKEWED.flip(0), step=1)  # replaces the history (K = 1), no refit yet
    assert float(sampler.proposal.max() / sampler.proposal.min()) == 1
    sampler.record(torch.arange(T + 1)[:0], torch.zeros(0, dtype=torch.float64), step=2)  # the 3rd step: refit
    assert int(sampler.proposal.argmax()) == T  # the flipped table, not the first one
    sampler.record(torch.tensor([0]), None, step=5)  # a skipped step still refits on time
    assert int(sampler.proposal.argmax()) == T


def test_the_draws_follow_the_proposal():
    """t = searchsorted(cdf, u): a grid of 10^6 evenly spaced u lands on each t with frequency q_t to 1e-6."""
    sampler = _fitted(SKEWED)
    n = 1_000_000
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # [n]
    t_int = sampler.steps(u)  # [n]
    assert int(t_int.min()) == 0 and int(t_int.max()) == T
    frequency = torch.bincount(t_int, minlength=T + 1).to(torch.float64) / n  # [T + 1]
    torch.testing.assert_close(frequency, sampler.proposal, rtol=0, atol=2e-6)


def _trainer(tmp_path, timesteps: int = 9, prefetch: bool | None = None, **train) -> Trainer:
    config = tiny_config(tmp_path, time_sampling="importance", importance_history=1, importance_refit_every=2,
                         max_steps=8, **train).replace({"diffusion.timesteps": timesteps})
    return Trainer(config, ToyMolecules(64), node_histogram=HISTOGRAM, prefetch=prefetch)


def test_the_trainer_draws_t_from_q_and_weights_each_term_by_p_over_q(tmp_path):
    trainer = _trainer(tmp_path)
    sampler = trainer.optimisation.time_sampler
    sampler.proposal = torch.arange(1, 11, dtype=torch.float64) / 55  # [10] q_t = (t + 1) / 55, far from uniform
    indices, _ = trainer.next_indices()
    batch, t_int, noise = trainer.prepare_batch(indices, 0)
    assert torch.equal(t_int, sampler.steps(per_sample_uniforms(0, 0, indices.tolist())))
    with torch.no_grad():
        per_molecule = diffusion_loss(trainer.model, trainer.schedule, batch, t_int=t_int, noise=noise).per_molecule
    p_over_q = (1 / 10) / sampler.proposal[t_int]  # [B]
    result = trainer.train_step()
    assert abs(result.loss - float((p_over_q * per_molecule).mean())) < 1e-6 * abs(result.loss)
    assert abs(result.loss - float(per_molecule.mean())) > 1e-3 * abs(result.loss)


def test_the_trainer_applies_the_loss_weighting(tmp_path):
    """train.loss_weighting reaches the step's loss: clamped_snr's loss at the step's own t and noise, not EDM's."""
    config = tiny_config(tmp_path, loss_weighting="clamped_snr")
    trainer = Trainer(config, ToyMolecules(64), node_histogram=HISTOGRAM)
    indices, _ = trainer.next_indices()
    batch, t_int, noise = trainer.prepare_batch(indices, 0)
    with torch.no_grad():
        losses = {weighting: float(diffusion_loss(trainer.model, trainer.schedule, batch, t_int=t_int, noise=noise,
                                                  weighting=weighting).loss) for weighting in ("edm", "clamped_snr")}
    loss = trainer.train_step().loss
    assert abs(loss - losses["clamped_snr"]) < 1e-6 * loss and abs(loss - losses["edm"]) > 1e-3 * loss, losses


def test_resume_with_importance_sampling_is_bitwise(tmp_path):
    """8 steps in one run (batches prepared ahead) equal 3 steps, a checkpoint in the middle of a refit period and
    5 more; the proposal, refitted after steps 2, 4, 6 and 8, is no longer uniform by the end."""
    straight = _trainer(tmp_path / "a", prefetch=True)
    straight.run()
    first = _trainer(tmp_path / "b")
    first.run(max_steps=3)
    resumed = _trainer(tmp_path / "b")
    assert resumed.load_checkpoint(tmp_path / "b" / "last.pt") == []
    resumed.run()
    assert resumed.step == straight.step == 8
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same_state(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")
    proposal = straight.optimisation.time_sampler.state_dict()
    assert_same_state(proposal, resumed.optimisation.time_sampler.state_dict(), "time_sampler")
    assert float(proposal["proposal"].max() / proposal["proposal"].min()) > 1.01
    assert int(proposal["counts"].sum()) == 8 * 16


def test_a_resume_may_change_the_weighting_and_the_sampling_of_t(tmp_path):
    """train settings: allowed, listed, and a run that did not sample by importance starts with a uniform q."""
    uniform = Trainer(tiny_config(tmp_path, max_steps=2).replace({"diffusion.timesteps": 9}), ToyMolecules(64),
                      node_histogram=HISTOGRAM)
    uniform.run()
    resumed = _trainer(tmp_path, loss_weighting="min_snr")
    differences = resumed.load_checkpoint(tmp_path / "last.pt")
    assert "train.time_sampling: 'uniform' -> 'importance'" in differences, differences
    assert "train.loss_weighting: 'edm' -> 'min_snr'" in differences, differences
    assert int(resumed.optimisation.time_sampler.counts.sum()) == 0
    assert resumed.run().step == 8


def test_the_validation_nll_is_edms_bound_under_every_setting(qm9_splits, tmp_path):
    """The same weights give the same validation NLL whatever the loss weighting and the sampling of t."""
    values = set()
    for weighting, sampling in (("edm", "uniform"), ("min_snr", "uniform"), ("clamped_snr", "importance")):
        config = tiny_config(tmp_path, loss_weighting=weighting, time_sampling=sampling, eval_molecules=8)
        trainer = Trainer(config, qm9_splits["train"], qm9_splits["valid"])
        values.add(trainer.evaluate(trainer.model)["val_nll"])
    assert len(values) == 1


def test_the_settings_are_checked_and_the_cpu_config_keeps_the_defaults():

    for bad, message in (({"loss_weighting": "snr"}, "train.loss_weighting must be one of 'edm', 'min_snr'"),
                         ({"time_sampling": "vlb"}, "train.time_sampling must be one of 'uniform', 'importance'"),
                         ({"min_snr_gamma": 0}, "train.min_snr_gamma must be a finite number > 0"),
                         ({"importance_history": 0}, "train.importance_history must be an integer >= 1"),
                         ({"importance_refit_every": "x"}, "train.importance_refit_every must be an integer")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**bad)
    cpu = load_config(Path(__file__).resolve().parents[2] / "configs" / "qm9_ponita_cpu.yaml").train
    names = ("loss_weighting", "min_snr_gamma", "time_sampling", "importance_history", "importance_refit_every")
    assert {n: getattr(cpu, n) for n in names} == {n: getattr(TrainConfig(), n) for n in names}
    assert (TrainConfig().loss_weighting, TrainConfig().time_sampling) == ("edm", "uniform")
