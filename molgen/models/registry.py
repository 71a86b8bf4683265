"""The denoisers a run config can name: each model module registers its name, config class and module class.

`molgen.models` imports its model modules (PONITA, then EGNN), so the registry is complete whenever it can be
consulted. A new model registers itself with `register_model` at the end of its module and is listed in
`molgen/models/__init__.py`; `molgen.config.ModelConfig` needs no edit.
"""

from __future__ import annotations

from dataclasses import dataclass

_MODELS: dict[str, ModelSpec] = {}  # in registration order


@dataclass(frozen=True)
class ModelSpec:
    """A registered denoiser.

    Attributes:
        name: the `model.name` of run configs and checkpoints.
        config_class: its frozen `DictConfig` dataclass of hyper-parameters.
        model_class: the `nn.Module` built as `model_class(config)`.
    """

    name: str
    config_class: type
    model_class: type


def register_model(name: str, config_class: type, model_class: type) -> None:
    """Make `name` a model of run configs; ValueError if the name is taken."""
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered ({_MODELS[name].model_class.__qualname__})")
    _MODELS[name] = ModelSpec(name, config_class, model_class)


def model_names() -> tuple[str, ...]:
    """The registered model names, in registration order."""
    return tuple(_MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registered model `name`; ValueError naming the known models otherwise."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(map(repr, _MODELS))}")
    return _MODELS[name]
