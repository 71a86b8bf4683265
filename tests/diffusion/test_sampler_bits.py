"""Without ε-modifiers every sampler and inpainting give today's results bit for bit: the outputs and every step's
state equal those recorded before the sampler table and the ε-modifier seam (tests/fixtures/sampler_bits/record.py),
in float64 on a stand-in denoiser of exactly rounded operations (the same bits under AVX2 and AVX-512 kernels,
checked with ATEN_CPU_CAPABILITY)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BITS = Path(__file__).resolve().parents[1] / "fixtures" / "sampler_bits"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_sampler_bits", BITS / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()


@pytest.fixture(scope="module")
def recorded():
    return torch.load(RECORDER.SAMPLES, weights_only=True)


@pytest.mark.parametrize("case", list(RECORDER.CASES))
def test_no_modifier_gives_the_recorded_bits(recorded, case):
    today = RECORDER.run(case)
    assert set(today) == set(recorded[case])
    for key, expected in recorded[case].items():
        assert today[key].dtype == expected.dtype and torch.equal(today[key], expected), f"{case}: {key} differs"


def test_an_empty_modifier_list_is_no_modifier():
    from molgen.diffusion import PolynomialSchedule, sample

    runs = [sample(RECORDER.denoiser, PolynomialSchedule(100), RECORDER.NUM_ATOMS, sampler="dpmpp2m", steps=5,
                   generator=torch.Generator().manual_seed(0), dtype=torch.float64, **extra)
            for extra in ({}, {"modifiers": ()}, {"modifiers": []})]
    assert all(torch.equal(run.x, runs[0].x) for run in runs[1:])
