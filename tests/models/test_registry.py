"""The model registry: run configs name a registered denoiser, and a new model needs no edit in molgen.config."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from torch import nn

from molgen.config import ModelConfig, RunConfig
from molgen.configbase import DictConfig
from molgen.models import registry
from molgen.models.egnn import EGNN, EGNNConfig
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.models.registry import ModelSpec, model_names, model_spec, register_model


@dataclass(frozen=True)
class ToyConfig(DictConfig):
    """A toy model's sizes."""

    SECTION = "toy"

    width: int = 4
    scale: float = 1.0


class Toy(nn.Module):
    """A toy denoiser module built from its config."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.width, config.width)


@contextmanager
def toy_registered() -> Iterator[None]:
    """The toy model registered inside the block; the registry is restored on leaving it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "_MODELS", dict(registry._MODELS))
        register_model("toy", ToyConfig, Toy)
        yield


def test_the_models_are_registered():
    assert model_names() == ("ponita", "egnn", "property_regressor")
    assert model_spec("ponita") == ModelSpec("ponita", PonitaConfig, Ponita)
    assert model_spec("egnn") == ModelSpec("egnn", EGNNConfig, EGNN)


@pytest.mark.slow
def test_registry_is_complete_in_a_fresh_interpreter_whatever_is_imported_first():
    code = "import molgen.models.egnn; from molgen.models.registry import model_names; print(*model_names())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["ponita", "egnn", "property_regressor"]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown model 'gnn'; known models: 'ponita', 'egnn', 'property_regressor'$"):
        model_spec("gnn")
    with pytest.raises(ValueError, match=r"^model\.name must be one of 'ponita', 'egnn', 'property_regressor'; got 'gnn'$"):
        ModelConfig(name="gnn")


def test_duplicate_name_is_refused():
    with toy_registered():
        with pytest.raises(ValueError, match="'toy' is already registered"):
            register_model("toy", ToyConfig, Toy)
        with pytest.raises(ValueError, match="'ponita' is already registered"):
            register_model("ponita", ToyConfig, Toy)
        assert model_spec("toy").model_class is Toy and model_spec("ponita").model_class is Ponita
    assert model_names() == ("ponita", "egnn", "property_regressor")


def test_a_registered_model_builds_through_the_run_config():
    with toy_registered():
        config = ModelConfig(name="toy", config={"width": 3, "scale": "2.5"})
        assert config.config == {"width": 3, "scale": 2.5}  # defaults filled in, numeric strings read as floats
        model = config.build()
        assert isinstance(model, Toy) and model.config == ToyConfig(width=3, scale=2.5)
        run = RunConfig.from_dict({"model": {"name": "toy"}})
        assert RunConfig.from_dict(run.to_dict()) == run and run.model.model_config() == ToyConfig()
        with pytest.raises(ValueError, match=r"^model\.config: unknown key\(s\) in toy: \['depth'\]"):
            ModelConfig(name="toy", config={"depth": 2})
    with pytest.raises(ValueError, match="'ponita', 'egnn', 'property_regressor'; got 'toy'"):
        ModelConfig(name="toy")
