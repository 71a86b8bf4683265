"""train.compile: the setting, `molgen train --compile`, the compiler lookup, the training view, and one compiled
training step against the eager one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

from molgen.cli import _config_overrides, _parser
from molgen.config import RunConfig
from molgen.errors import MolgenError
from molgen.models.egnn import EGNN, EGNNConfig
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.train.compile import find_compiler, training_view
from molgen.train.loop import Trainer
from molgen.train.step import StepResult

from .helpers import TINY_PONITA, ToyMolecules, assert_same_state, tiny_config


def lookup(*present: str):
    """A PATH lookup that finds only `present` (each in /usr/bin)."""
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_the_setting_defaults_to_off_and_takes_only_booleans(tmp_path):
    assert RunConfig.from_dict({}).train.compile is False
    assert tiny_config(tmp_path, compile=True).to_dict()["train"]["compile"] is True
    with pytest.raises(ValueError, match=r"train\.compile must be true or false, got 'yes'"):
        tiny_config(tmp_path, compile="yes")


def test_the_cli_flag_sets_it():
    overrides, options = _config_overrides(_parser().parse_args(["train", "run.yaml", "--compile"]))
    assert overrides["train.compile"] is True and options["train.compile"].startswith("--compile")
    overrides, _ = _config_overrides(_parser().parse_args(["train", "run.yaml"]))
    assert "train.compile" not in overrides  # the config file's value stands


def test_the_compiler_is_cxx_else_gxx_else_clang(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    assert find_compiler(lookup("g++", "clang++")) == "/usr/bin/g++"
    assert find_compiler(lookup("clang++")) == "/usr/bin/clang++"
    monkeypatch.setenv("CXX", "clang++")
    assert find_compiler(lookup("g++", "clang++")) == "/usr/bin/clang++"


def test_a_missing_compiler_is_one_line(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(MolgenError, match=r"needs a C\+\+ compiler \(g\+\+ or clang\+\+\) on PATH") as error:
        find_compiler(lookup())
    assert "\n" not in str(error.value)
    monkeypatch.setenv("CXX", "/opt/cxx")
    with pytest.raises(MolgenError, match="CXX=/opt/cxx was not found"):
        find_compiler(lookup("g++"))
    with pytest.raises(MolgenError, match="C\\+\\+ compiler"):  # refused before anything is compiled
        training_view(Ponita(PonitaConfig(**TINY_PONITA)), True, lookup())


def test_egnn_is_refused_in_one_line():
    with pytest.raises(MolgenError, match="PONITA denoiser only .* not EGNN; set train.compile: false"):
        training_view(EGNN(EGNNConfig(hidden=8, layers=1)), True, lookup("g++"))


def test_the_view_shares_the_weights_and_leaves_the_model_eager():
    model = Ponita(PonitaConfig(**TINY_PONITA))
    assert training_view(model, False) is model
    view = training_view(model, True, lookup("g++"))
    assert view is not model and "_network" in vars(view) and "_network" not in vars(model)
    assert list(view.state_dict()) == list(model.state_dict())  # no _orig_mod. prefix
    assert all(a is b for a, b in zip(view.parameters(), model.parameters(), strict=True))
    assert "_network" not in vars(copy.deepcopy(model))  # the EMAs copy an eager model


def one_step(compile_network: bool) -> tuple[Trainer, StepResult]:
    """The tiny PONITA (fp32, 1 thread) after one training step on toy molecules of 3 to 6 atoms (padded)."""
    trainer = Trainer(tiny_config("unused", compile=compile_network), ToyMolecules(64))
    return trainer, trainer.train_step()


@pytest.mark.slow
def test_a_compiled_step_matches_the_eager_step():
    """The same loss, gradient norm and gradients to fp32 rounding (rtol 1e-5), and so the same AdamW step: within
    1e-6 where |g| >= 1e-6; where |g| is near AdamW's eps (1e-8), lr * g / (|g| + eps) turns rounding into up to
    lr (1e-3)."""
    graphs = counters["stats"]["unique_graphs"]
    (eager, eager_step), (compiled, compiled_step) = one_step(False), one_step(True)
    assert counters["stats"]["unique_graphs"] > graphs  # the compiled step did run the compiled network
    assert compiled_step.loss == pytest.approx(eager_step.loss, rel=1e-6)
    assert compiled_step.grad_norm == pytest.approx(eager_step.grad_norm, rel=1e-5)
    lr = eager.config.train.lr
    for (name, e), c in zip(eager.model.named_parameters(), compiled.model.parameters(), strict=True):
        torch.testing.assert_close(c.grad, e.grad, rtol=1e-5, atol=1e-8, msg=name)
        steady = e.grad.abs() >= 1e-6
        torch.testing.assert_close(c[steady], e[steady], rtol=0, atol=1e-6, msg=name)
        assert (c - e).abs().max() <= 2 * lr, name


@pytest.mark.slow
def test_a_compiled_run_resumes_bitwise(tmp_path):
    """Compiled steps are deterministic: 2 steps, a checkpoint, a new trainer and 2 more steps end with the weights,
    EMA and optimizer state of 4 steps straight."""
    data = ToyMolecules(64)
    straight = Trainer(tiny_config(tmp_path / "a", compile=True, max_steps=4), data)
    straight.run()
    Trainer(tiny_config(tmp_path / "b", compile=True, max_steps=4), data).run(max_steps=2)
    resumed = Trainer(tiny_config(tmp_path / "b", compile=True, max_steps=4), data)
    assert resumed.load_checkpoint(tmp_path / "b" / "last.pt") == []
    resumed.run()
    first, second = straight.state_dict(), resumed.state_dict()
    for key in ("model", "ema", "optimizer"):
        assert_same_state(first[key], second[key], key)
