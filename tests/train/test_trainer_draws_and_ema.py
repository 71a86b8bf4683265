"""The trainer's draws of t (EDM: uniform on {0..T}, t = 0 included) and its EMA update at every step."""

from __future__ import annotations

import math

import torch

from molgen.train.loop import Trainer

from .helpers import ToyMolecules, tiny_config

HISTOGRAM = torch.tensor([0, 0, 0, 1, 1, 1, 1] + [0] * 23)  # 3 to 6 atoms, as ToyMolecules


def _trainer(tmp_path, timesteps: int = 1000, **train) -> Trainer:
    config = tiny_config(tmp_path, **train).replace({"diffusion.timesteps": timesteps})
    return Trainer(config, ToyMolecules(64), node_histogram=HISTOGRAM)


def test_trainer_draws_every_step_uniformly_t0_included(tmp_path):
    """Every t in {0..T} comes with frequency 1/(T + 1), t = 0 included, within a binomial 5-sigma bound.

    T = 9 and 160 x 64 = 10,240 draws: each count is 1,024 +- 30 (one sigma), the bound +- 152; a draw from
    {1..T} (no t = 0) or {0..T - 1} gives a count of 0 at t = 0 or t = T, 34 sigma off.
    """
    timesteps, steps = 9, 160
    trainer = _trainer(tmp_path, timesteps)
    indices = torch.arange(64)
    draws = torch.cat([trainer.prepare_batch(indices, step)[1] for step in range(steps)])  # [n]
    n, p = draws.numel(), 1 / (timesteps + 1)
    bound = 5 * math.sqrt(n * p * (1 - p))
    counts = torch.bincount(draws, minlength=timesteps + 2)  # [T + 2]
    assert int(counts[timesteps + 1]) == 0 and int(draws.min()) >= 0
    for t, count in enumerate(counts[: timesteps + 1].tolist()):
        assert abs(count - n * p) < bound, (t, count, n * p, bound)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def test_every_ema_follows_every_step_of_the_trainer(tmp_path):
    """After each trainer step: ema = decay * ema_before + (1 - decay) * model_after, per parameter, for every EMA.

    The decays are given per 64 molecules; a step of 16 molecules decays by decay ** (16 / 64). EDM has no EMA
    warm-up, so the first step follows the same rule. The EMAs start away from the model (a known state), so an
    EMA frozen, skipped on some step, stepped with a wrong decay or towards the weights before the step fails.
    """
    trainer = _trainer(tmp_path, ema_decays=[0.9, 0.5], lr=1e-2)
    per_step = {"0.9": 0.9 ** (16 / 64), "0.5": 0.5 ** (16 / 64)}
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for ema in trainer.emas.averages.values():
            for tensor in ema.module.parameters():
                tensor.add_(0.1 * torch.randn(tensor.shape, generator=generator))
    assert set(trainer.emas.averages) == set(per_step)
    for _ in range(3):
        before = {key: _snapshot(ema.module) for key, ema in trainer.emas.averages.items()}
        model_before = _snapshot(trainer.model)
        trainer.train_step()
        after = _snapshot(trainer.model)
        assert any(not torch.equal(after[name], model_before[name]) for name in after)  # the step moved the model
        for key, ema in trainer.emas.averages.items():
            decay, state = per_step[key], ema.module.state_dict()
            for name, value in after.items():
                if not value.is_floating_point():
                    continue
                expected = decay * before[key][name].double() + (1 - decay) * value.double()
                torch.testing.assert_close(state[name].double(), expected, rtol=0, atol=1e-6, msg=f"{key} {name}")
