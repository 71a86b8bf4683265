"""EMA update formula and EDM's adaptive gradient clipping rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from molgen.train.clipping import AdaptiveClipper
from molgen.train.ema import EMA


class WithBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("constant", torch.tensor([0.1, 0.7, 1 / 3]))
        self.register_buffer("count", torch.tensor(0))


def test_ema_starts_as_a_copy_and_follows_the_formula():
    torch.manual_seed(0)
    model = WithBuffers()
    ema = EMA(model, decay=0.9)
    for a, b in zip(ema.module.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model.running.fill_(5.0)
        model.count.fill_(7)
    ema.update(model)
    new = model.state_dict()
    for name in ("linear.weight", "linear.bias", "running"):  # no bias correction: 0.9 old + 0.1 new
        torch.testing.assert_close(ema.state_dict()[name], 0.9 * old[name] + 0.1 * new[name], rtol=0, atol=1e-6)
    assert torch.equal(ema.state_dict()["constant"], model.constant)  # constants stay exact
    assert int(ema.state_dict()["count"]) == 7  # integer buffers are copied
    second = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.update(model)
    torch.testing.assert_close(ema.state_dict()["running"], 0.9 * second["running"] + 0.1 * 5.0, rtol=0, atol=1e-6)
    assert not torch.equal(model.linear.weight, ema.module.linear.weight)  # a copy, not shared storage


def test_ema_decay_zero_is_the_model():
    model = WithBuffers()
    ema = EMA(model, decay=0.0)
    with torch.no_grad():
        model.linear.weight.add_(1.0)
    ema.update(model)
    assert torch.equal(ema.module.linear.weight, model.linear.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_clipping_threshold_on_a_hand_made_sequence():
    clipper = AdaptiveClipper()
    assert clipper.history == [3000.0] and clipper.threshold() == 4500.0  # std of one value is 0
    assert clipper.record(100.0) == (4500.0, False)
    assert clipper.history == [3000.0, 100.0]
    expected = 1.5 * 1550.0 + 2 * 1450.0  # mean 1550, population std 1450
    assert clipper.threshold() == pytest.approx(expected)
    threshold, clipped = clipper.record(10_000.0)
    assert clipped and threshold == pytest.approx(expected)
    assert clipper.history[-1] == pytest.approx(expected)  # the threshold is recorded, not the raw norm


def test_clipping_history_keeps_the_last_50():
    rng = np.random.default_rng(0)
    clipper = AdaptiveClipper()
    recorded = [3000.0]
    for norm in rng.uniform(1, 20, size=80):
        window = np.array(recorded[-50:])
        threshold = 1.5 * window.mean() + 2 * window.std()  # numpy's std is the population std
        got, clipped = clipper.record(float(norm))
        assert got == pytest.approx(threshold, rel=1e-12) and clipped == (norm > threshold)
        recorded.append(threshold if clipped else float(norm))
    assert len(clipper.history) == 50 and clipper.history == pytest.approx(recorded[-50:])
    assert AdaptiveClipper(clipper.state_dict()).history == clipper.history
