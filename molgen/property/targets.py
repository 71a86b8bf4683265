"""Property targets of guided sampling, free of torch: `--target NAME=VALUE` read and checked, the guidance scale
checked and each property's guide regressor found (`NAME_guide.pt` in the regressor folder), so that the command line
refuses a bad request with one line before it loads torch or a checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from molgen.errors import MolgenError

PROPERTY_UNITS: dict[str, str] = {"alpha": "Bohr^3", "gap": "meV", "homo": "meV", "lumo": "meV", "mu": "Debye",
                                  "Cv": "cal/(mol K)"}  # EDM's names and units
DEFAULT_REGRESSORS = Path(__file__).resolve().parents[2] / "checkpoints" / "regressors"
REGRESSORS_VARIABLE = "MOLGEN_REGRESSORS"
# s of eps~ = eps_hat + s sigma_t grad E; chosen by the pilot of eval/property_guidance.md
DEFAULT_GUIDANCE = 2.0

Target = tuple[str, float]


def parse_target(text: str) -> Target:
    """'gap=6500' -> ('gap', 6500.0); MolgenError for no '=', an unknown property or a value that is no finite
    number."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals:
        raise MolgenError(f"a target is NAME=VALUE (e.g. gap=6500), got {text!r}")
    if name not in PROPERTY_UNITS:
        raise MolgenError(f"unknown property {name!r} in --target {text}; choose one of {', '.join(PROPERTY_UNITS)}")
    try:
        number = float(value)
    except ValueError:
        raise MolgenError(f"the target of {name} must be a number (in {PROPERTY_UNITS[name]}), got {value!r}") from None
    if not math.isfinite(number):
        raise MolgenError(f"the target of {name} must be a finite number, got {value!r}")
    return name, number


def check_targets(targets: Sequence[Target], guidance: float | None, bound: float | None = None) -> None:
    """MolgenError for an unknown or repeated property, a target that is no finite number, a guidance scale that is
    negative or not finite, a guidance bound that is not a finite number > 0, or a scale or bound without targets."""
    names = [name for name, _ in targets]
    for name, value in targets:
        if name not in PROPERTY_UNITS:
            raise MolgenError(f"unknown property {name!r}; choose one of {', '.join(PROPERTY_UNITS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MolgenError(f"the target of {name} must be a finite number (in {PROPERTY_UNITS[name]}), "
                              f"got {value!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MolgenError(f"each property takes one target; {', '.join(repeated)} given more than once")
    if guidance is not None and not (isinstance(guidance, (int, float)) and math.isfinite(guidance) and guidance >= 0):
        raise MolgenError(f"the guidance scale must be a finite number >= 0, got {guidance}")
    if guidance is not None and not targets:
        raise MolgenError("--guidance needs at least one --target NAME=VALUE")
    if bound is not None and not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
        raise MolgenError(f"the guidance bound must be a finite number > 0, got {bound}")
    if bound is not None and not targets:
        raise MolgenError("--guidance-bound needs at least one --target NAME=VALUE")


def regressor_folder(folder: str | Path | None = None) -> Path:
    """The folder of the guide regressors: `folder`, else $MOLGEN_REGRESSORS, else checkpoints/regressors/."""
    if folder is not None:
        return Path(folder)
    return Path(os.environ[REGRESSORS_VARIABLE]) if os.environ.get(REGRESSORS_VARIABLE) else DEFAULT_REGRESSORS


def guide_path(name: str, folder: str | Path | None = None) -> Path:
    """The guide regressor of property `name`: FOLDER/NAME_guide.pt; MolgenError when the file is missing."""
    path = regressor_folder(folder) / f"{name}_guide.pt"
    if not path.is_file():
        raise MolgenError(f"no guide regressor for {name}: {path} does not exist (train one, or point --regressors "
                          f"or ${REGRESSORS_VARIABLE} at a folder holding {name}_guide.pt)")
    return path


def add_target_arguments(parser) -> None:
    """`--target NAME=VALUE` (repeatable), `--guidance S`, `--guidance-bound K` and `--regressors DIR` of
    `molgen sample`."""
    parser.add_argument("--target", action="append", default=None, metavar="NAME=VALUE",
                        help="steer toward this property value, in EDM's units (" +
                             ", ".join(f"{name}: {unit}" for name, unit in PROPERTY_UNITS.items()) +
                             "); repeat for several properties (their energies add). EEGSDE's energy guidance "
                             "with the NAME_guide.pt regressors; atom counts drawn from p(N | targets) unless "
                             "--num-atoms is given (ancestral sampler only, also with --fix)")
    parser.add_argument("--guidance", default=None, metavar="S",
                        help=f"with --target: the guidance scale s >= 0 (default {DEFAULT_GUIDANCE:g}; 0: unguided, "
                             "with the atom counts still drawn given the targets)")
    parser.add_argument("--guidance-bound", default=None, metavar="K",
                        help="with --target: cap the guidance term s sigma_t grad E at a root mean square of K (noise "
                             "standard deviations) per molecule, against the rare steps where a large s throws the "
                             "state off (default: unbounded, EEGSDE's form)")
    parser.add_argument("--regressors", type=Path, default=None, metavar="DIR",
                        help=f"folder of the NAME_guide.pt regressors (default: ${REGRESSORS_VARIABLE} or "
                             "checkpoints/regressors)")


def targets_from_arguments(args) -> dict:
    """The SampleSettings fields `targets`, `guidance`, `guidance_bound` and `regressors` from the
    `add_target_arguments` options (none when the command has no such options); MolgenError for a bad target or a
    scale or bound that is no number."""
    texts = getattr(args, "target", None) or []
    guidance = _number_option(args, "guidance", "--guidance must be a number >= 0")
    bound = _number_option(args, "guidance_bound", "--guidance-bound must be a number > 0")
    regressors = getattr(args, "regressors", None)
    return {"targets": tuple(parse_target(text) for text in texts), "guidance": guidance, "guidance_bound": bound,
            "regressors": None if regressors is None else str(regressors)}


def _number_option(args, name: str, message: str) -> float | None:
    """The option `name` of args as a float (None when absent or not given); MolgenError(message) when no number."""
    value = getattr(args, name, None)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise MolgenError(f"{message}, got {value!r}") from None
