"""train.compile: the training step runs PONITA's network through torch.compile (inductor's C++ backend on the CPU).

The compiled network lives in a training view of the model (`training_view`): a shallow copy that shares every
parameter, buffer and submodule with the model, with its `_network` method replaced by the compiled one. The
optimizer, the EMAs, the checkpoints (state_dict keys unchanged), validation and sampling keep using the eager
model. Shapes are dynamic (torch.compile(dynamic=True)), so the size buckets' molecule counts and atom counts do
not recompile the network per size; the first batches pay the compile time (eval/bench_compile.md).
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable

import torch
from torch import nn

from molgen.errors import MolgenError
from molgen.models.ponita import Ponita

COMPILERS = ("g++", "clang++")  # inductor reads $CXX, else g++; clang++ is handed to it when g++ is missing


def find_compiler(which: Callable[[str], str | None] = shutil.which) -> str:
    """The C++ compiler inductor will use: $CXX when set, else the first of g++, clang++ on PATH.

    MolgenError (one line) when there is none; `which` looks a name up (shutil.which; tests inject it).
    """
    chosen = os.environ.get("CXX")
    if chosen:
        found = which(chosen)
        if found is None:
            raise MolgenError(f"train.compile needs a C++ compiler: CXX={chosen} was not found (install it, fix "
                              "CXX, or set train.compile: false)")
        return found
    for name in COMPILERS:
        found = which(name)
        if found is not None:
            return found
    raise MolgenError("train.compile needs a C++ compiler (g++ or clang++) on PATH; none was found (install g++, "
                      "set CXX, or set train.compile: false)")


def training_view(model: nn.Module, compile_network: bool,
                  which: Callable[[str], str | None] = shutil.which) -> nn.Module:
    """The model as the training step calls it: `model` itself, or with train.compile a view whose network is
    compiled (see the module docstring). MolgenError for a model other than PONITA or without a C++ compiler."""
    if not compile_network:
        return model
    if not isinstance(model, Ponita):
        raise MolgenError(f"train.compile supports the PONITA denoiser only (model.name: ponita), not "
                          f"{type(model).__name__}; set train.compile: false")
    compiler = find_compiler(which)
    import torch._inductor.config as inductor

    inductor.cpp.cxx = (None, compiler)
    view = copy.copy(model)  # shares the parameters, buffers and submodules (the _modules dicts themselves)
    view._network = torch.compile(model._network, dynamic=True)  # an attribute of the view alone
    return view
