"""Sampling reproduces the golden samples recorded before the structure refactor (tests/fixtures/golden/record.py):
the same checkpoint, seed and settings in fp32 on one thread give the same molecules and chain. Positions agree to
1e-3 Å: CPUs of other kinds sum in another order (an AMD EPYC with AVX-512 differs from the recording Xeon by up to
1.6e-4 Å after 100 steps), while a wrong step moves atoms by 3e-3 Å or more."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_golden", GOLDEN / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()


@pytest.fixture(scope="module")
def golden():
    return torch.load(RECORDER.SAMPLES, weights_only=True)


@pytest.fixture(scope="module")
def today():
    return RECORDER.record(RECORDER.CHECKPOINT)


@pytest.mark.parametrize("case", list(RECORDER.CASES))
def test_samples_equal_the_golden_ones(golden, today, case):
    expected, got = golden[case], today[case]
    assert len(got["atom_types"]) == len(expected["atom_types"]) == RECORDER.CASES[case]["num_molecules"]
    for types, expected_types in zip(got["atom_types"], expected["atom_types"]):
        assert torch.equal(types, expected_types)
    for x, expected_x in zip(got["positions"], expected["positions"]):
        torch.testing.assert_close(x, expected_x, atol=1e-3, rtol=0)
    assert len(got["chain"]) == len(expected["chain"])
    for frame, expected_frame in zip(got["chain"], expected["chain"]):
        torch.testing.assert_close(frame, expected_frame, atol=1e-3, rtol=0)


def test_the_fragment_case_keeps_its_fixed_atoms(today):
    fixed = torch.tensor(RECORDER.FRAGMENT[0], dtype=torch.float64)  # [3, 3]
    for x in today["fragment"]["positions"]:
        torch.testing.assert_close(x[:3], fixed)
