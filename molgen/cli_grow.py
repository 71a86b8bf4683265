"""`molgen grow`: a trained PONITA checkpoint made deeper and/or wider, or given radial features in its spatial
basis, without changing what it computes.

The weights and every EMA grow alike (molgen.models.grow: Net2Net). The grown file is a training checkpoint of
the grown model: its config says the new `layers`, `hidden` and `radial_*` (so `sample` and `evaluate` read it as
it is) and `train.rewarmup_molecules`; AdamW's state is reset (its moments belong to the old shapes) and the learning
rate warms up again from the molecules seen so far. Everything else (molecules seen, the data position, random
states, metrics, the clipping history) continues.
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path
from typing import Any

from molgen.choices import seed_problem
from molgen.cli_help import HelpFormatter
from molgen.errors import MolgenError
from molgen.outputs import check_output_file, writing


def add_grow_parser(commands: argparse._SubParsersAction) -> None:
    """`molgen grow`."""
    grow = commands.add_parser(
        "grow", help="grow a trained PONITA deeper or wider or add radial features, keeping what it computes",
        formatter_class=HelpFormatter,
        description="Write a checkpoint of a deeper (--layers) and/or wider (--hidden) PONITA that computes what "
                    "CHECKPOINT computes: new blocks start as identities, channels are copied and their outgoing "
                    "weights split, radial features (--radial-features) enter the spatial basis with zero weights. "
                    "Continue training it with `molgen train CONFIG --resume FILE` plus the --set options it prints.",
    )
    grow.add_argument("checkpoint", type=Path, help="a PONITA training checkpoint (last.pt, a shipped file, ...)")
    grow.add_argument("--out", type=Path, required=True, metavar="FILE", help="the grown checkpoint to write")
    grow.add_argument("--layers", type=int, default=None, metavar="L", help="blocks after growing (default: as now)")
    grow.add_argument("--hidden", type=int, default=None, metavar="C",
                      help="channels after growing, a multiple of today's (default: as now)")
    grow.add_argument("--noise", type=float, default=1e-2, metavar="SCALE",
                      help="symmetry-breaking noise on the copied channels' incoming weights, in standard deviations "
                           "of each weight tensor; centred over the copies, it changes the output only at second "
                           "order (1e-2: about 1e-4 relative; 0: an exact copy whose copies train alike)")
    grow.add_argument("--seed", type=int, default=0, help="seed of the new blocks' weights and of the noise")
    grow.add_argument("--rewarmup", type=int, default=None, metavar="MOLECULES",
                      help="learning-rate re-warm-up after growing (default: the run's warm-up length)")
    grow.add_argument("--radial-features", type=int, default=None, metavar="K",
                      help="add K radial features each of the pair distance and of a and b to the spatial basis "
                           "(model.config.radial_features); their first-layer weights start at zero")
    grow.add_argument("--radial-basis", default=None, metavar="BASIS",
                      help="with --radial-features: bessel (DimeNet, PaiNN) or gaussian (SchNet) (default: bessel)")
    grow.add_argument("--radial-cutoff", type=float, default=None, metavar="ANGSTROM",
                      help="with --radial-features: the cutoff c in Å, where the Bessel features vanish and over "
                           "which the Gaussian centres spread (default: 5)")


def grow_command(args: argparse.Namespace) -> None:
    """Check the options, grow the checkpoint and write it atomically (nothing is written on an error)."""
    from molgen.checkpoint import load_training_state, save_checkpoint
    from molgen.config import RunConfig

    problem = seed_problem(args.seed)
    if problem is not None:
        raise MolgenError(f"--seed: {problem}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise MolgenError(f"--noise must be a number >= 0, got {args.noise}")
    if args.rewarmup is not None and args.rewarmup < 0:
        raise MolgenError(f"--rewarmup must be a number of molecules >= 0, got {args.rewarmup}")
    radial = radial_option(args)
    check_output_file(args.out)
    payload = load_training_state(args.checkpoint)  # its config is valid and its weights fit its model
    model = RunConfig.from_dict(payload["config"]).model
    if model.name != "ponita":
        raise MolgenError(f"checkpoint {args.checkpoint}: not a PONITA checkpoint (its model is {model.name!r}); "
                          "molgen grow grows PONITA only")
    layers = args.layers if args.layers is not None else model.config["layers"]
    hidden = args.hidden if args.hidden is not None else model.config["hidden"]
    try:
        grown = grow_checkpoint(payload, layers, hidden, args.noise, args.seed, args.rewarmup, radial)
    except ValueError as err:
        raise MolgenError(str(err)) from None
    with writing(args.out):
        save_checkpoint(grown, args.out)
    before, after = _parameters(payload["model"]), _parameters(grown["model"])
    added = "" if radial is None else f" with {radial.features} {radial.basis} radial features ({radial.cutoff:g} Å)"
    print(f"grew {args.checkpoint} from {model.config['layers']} x {model.config['hidden']} to {layers} x "
          f"{hidden}{added} ({before:,} -> {after:,} parameters): {args.out}")
    sets = {"model.config.layers": layers, "model.config.hidden": hidden}
    if radial is not None:
        sets.update({"model.config.radial_features": radial.features, "model.config.radial_basis": radial.basis,
                     "model.config.radial_cutoff": radial.cutoff})
    sets["train.rewarmup_molecules"] = grown["config"]["train"]["rewarmup_molecules"]
    print(f"continue with: molgen train CONFIG --resume {shlex.quote(str(args.out))} "
          + " ".join(f"--set {key}={value}" for key, value in sets.items()))


def radial_option(args: argparse.Namespace):
    """The radial features to add (molgen.models.grow.Radial, PONITA's defaults filled in), or None; MolgenError
    for a bad value."""
    from molgen.models.grow import Radial
    from molgen.models.ponita import PonitaConfig
    from molgen.nn.radial import RADIAL_BASES

    if args.radial_features is None:
        if args.radial_basis is not None or args.radial_cutoff is not None:
            raise MolgenError("--radial-basis and --radial-cutoff need --radial-features K")
        return None
    basis = PonitaConfig.radial_basis if args.radial_basis is None else args.radial_basis
    cutoff = PonitaConfig.radial_cutoff if args.radial_cutoff is None else args.radial_cutoff
    if basis not in RADIAL_BASES:
        raise MolgenError(f"--radial-basis must be one of {', '.join(RADIAL_BASES)}; got {basis!r}")
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise MolgenError(f"--radial-cutoff must be a distance > 0 in Å, got {cutoff}")
    return Radial(args.radial_features, basis, cutoff)


def grow_checkpoint(payload: dict[str, Any], layers: int, hidden: int, noise_scale: float = 1e-2, seed: int = 0,
                    rewarmup: int | None = None, radial=None) -> dict[str, Any]:
    """The training checkpoint of the grown PONITA (see the module docstring); ValueError for a bad size.

    `rewarmup`: molecules of the learning-rate re-warm-up (None: the run's warm-up length); `radial`: the radial
    features to add (molgen.models.grow.Radial; None: none).
    """
    from molgen.config import RunConfig
    from molgen.models.grow import PonitaGrowth

    config = RunConfig.from_dict(payload["config"])
    growth = PonitaGrowth.plan(config.model.model_config(), payload["model"], layers, hidden, noise_scale, seed,
                               radial)
    if rewarmup is None:
        rewarmup = config.train.warmup_molecules or config.train.warmup_steps * config.data.batch_size
    sizes = {f"model.config.{name}": getattr(growth.new, name)
             for name in ("layers", "hidden", "radial_features", "radial_basis", "radial_cutoff")}
    grown_config = config.replace({**sizes, "train.rewarmup_molecules": rewarmup})
    grown = dict(payload)
    grown["config"] = grown_config.to_dict()
    grown["model"] = growth.apply(payload["model"])
    grown["ema"] = growth.apply(payload["ema"])
    grown["emas"] = {key: growth.apply(state) for key, state in payload["emas"].items()}
    grown["optimizer"] = _fresh_optimizer_state(grown_config)
    grown["rewarmup_start"] = int(payload["molecules"])
    return grown


def _fresh_optimizer_state(config) -> dict[str, Any]:
    """AdamW's state dict before its first step, for the model of `config` (the trainer's optimizer settings)."""
    import torch

    train = config.train
    parameters = [p for p in config.model.build().parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=train.lr, betas=train.betas, weight_decay=train.weight_decay,
                                  amsgrad=train.amsgrad)
    return optimizer.state_dict()


def _parameters(state: dict[str, Any]) -> int:
    """Numbers in a state dict's floating tensors except the orientation grid (a buffer)."""
    return sum(t.numel() for name, t in state.items() if t.is_floating_point() and name != "grid")
