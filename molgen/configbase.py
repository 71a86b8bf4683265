"""Frozen-dataclass configurations that round-trip through plain dicts (checkpoints, YAML/JSON files)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar


def check_keys(cls: type, values: Any, section: str) -> None:
    """A mapping whose keys are all fields of the dataclass `cls`, else ValueError naming the strangers."""
    if not isinstance(values, dict):
        raise ValueError(f"{section} must be a mapping of fields, got {type(values).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) in {section}: {unknown}; allowed: {known}")


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
