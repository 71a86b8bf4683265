"""The sampler table: its names and capabilities import without torch, and every entry names a sampler function of
the one signature and a grid function of its steps."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from molgen.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLER_TABLE, SAMPLERS, sampler_spec

SIGNATURE = ["model", "start", "grid", "generator", "callback", "modifiers"]


def test_the_table_imports_without_torch():
    code = ("import sys; from molgen.choices import SAMPLER_TABLE, sampler_spec; sampler_spec('heun').max_steps(1000); "
            "print(sorted(SAMPLER_TABLE)); assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(SAMPLER_TABLE))


@pytest.mark.parametrize("name", list(SAMPLER_TABLE))
def test_every_entry_loads_a_sampler_of_the_one_signature_and_its_grid(name):
    import torch

    from molgen.diffusion import PolynomialSchedule

    spec = SAMPLER_TABLE[name]
    parameters = list(inspect.signature(spec.load()).parameters)
    assert parameters[: len(SIGNATURE)] == SIGNATURE
    assert ("churn" in parameters) == spec.churn
    grid = spec.load_grid()(PolynomialSchedule(1000), 7)
    assert isinstance(grid, torch.Tensor) and grid.shape == (8,)
    assert spec.network_calls(7) == spec.calls_per_step * 7 + 1
    assert spec.max_steps(1000) == (1000 if spec.at_most_T else None)


def test_names_defaults_and_lookup():
    assert SAMPLERS == tuple(SAMPLER_TABLE) and DEFAULT_SAMPLER in SAMPLER_TABLE
    assert DEFAULT_STEPS == {name: spec.default_steps for name, spec in SAMPLER_TABLE.items()}
    assert [name for name, spec in SAMPLER_TABLE.items() if spec.fix] == ["ancestral"]
    with pytest.raises(ValueError, match="unknown sampler 'ddim'; choose one of ancestral, heun, dpmpp2m"):
        sampler_spec("ddim")
