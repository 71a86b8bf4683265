"""Frozen-dataclass configurations that round-trip through plain dicts (checkpoints, YAML/JSON files): the
coercions their `__post_init__` checks use (errors name the field as `section.name`), and the reading of config
files and dotted-path overrides into those dicts."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import yaml


def check_keys(cls: type, values: Any, section: str) -> None:
    """A mapping whose keys are all fields of the dataclass `cls`, else ValueError naming the strangers."""
    if not isinstance(values, dict):
        raise ValueError(f"{section} must be a mapping of fields, got {type(values).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) in {section}: {unknown}; allowed: {known}")


def as_number(section: str, name: str, value: Any) -> float:
    """A finite or infinite float from an int, float or numeric string; ValueError naming the field otherwise."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{section}.{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{section}.{name} must be a number, got {value!r}")
    return float(value)


def as_integer(section: str, name: str, value: Any) -> int:
    """An int from an int, an integral float (1.7e6) or a numeric string; ValueError naming the field otherwise."""
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{section}.{name} must be an integer, got {value!r}") from None
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{section}.{name} must be an integer, got {value!r}")
    return value


def as_distinct_fractions(section: str, name: str, values: Any) -> tuple[float, ...]:
    """A number or a list of distinct numbers in [0, 1) as a tuple; ValueError naming the field otherwise."""
    if isinstance(values, (int, float, str)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{section}.{name} must be a list of numbers in [0, 1), got {values!r}")
    numbers = tuple(as_number(section, name, value) for value in values)
    if not all(0 <= n < 1 for n in numbers) or len(set(numbers)) != len(numbers):
        raise ValueError(f"{section}.{name} must be distinct numbers in [0, 1), got {list(numbers)}")
    return numbers


def check_bool(section: str, name: str, value: Any) -> None:
    """ValueError naming the field unless `value` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{section}.{name} must be true or false, got {value!r}")


def check_choice(section: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """ValueError naming the field and the allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{section}.{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def set_field(obj: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass (in its `__post_init__`, to store the coerced value)."""
    object.__setattr__(obj, name, value)


class DictConfig:
    """Mixin for frozen config dataclasses: `to_dict()` and `from_dict()`; `SECTION` names it in errors."""

    SECTION: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build from a dict; unknown keys raise ValueError naming them."""
        check_keys(cls, values, cls.SECTION)
        return cls(**values)


# ------------------------------------------------------------------------------------------------ files


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The non-empty dict in a YAML (.yaml/.yml) or JSON file; ValueError naming the file if it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (byte {err.start} is not UTF-8); a run config is YAML or "
                         "JSON") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON: {err}") from None
    if values is None or values == {}:
        raise ValueError(f"{path}: the config file holds no settings, and molgen does not train on its built-in "
                         "defaults alone; start from a file in configs/")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file must hold a mapping, got {type(values).__name__}")
    return values


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars and lists (3e-4, true, null, [0.9, 0.99]); else the raw string."""
    try:
        return yaml.safe_load(text)
    except Exception:  # noqa: BLE001 (yaml.YAMLError, or ValueError for a date like 2001-13-01: stays a string)
        return text


def apply_override(values: dict[str, Any], path: str, value: Any) -> None:
    """Set `values[a][b]... = value` for the dotted path "a.b...", creating missing mappings."""
    keys = path.split(".")
    if any(not key for key in keys):
        raise ValueError(f"malformed override path {path!r}")
    node = values
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ValueError(f"cannot set {path}: {'.'.join(keys[:depth + 1])} is not a section")
        node = child
    node[keys[-1]] = value
