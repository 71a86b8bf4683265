"""eval/radial_basis.py: the bf16 distance resolution of the spatial basis's inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "radial_basis.py"


def _script():
    spec = importlib.util.spec_from_file_location("radial_basis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_resolution_is_the_rounding_over_the_slope_along_the_distance():
    """For v = (a, b) the slope along a stretch of the pair is 1, so the resolution is the rounding itself; scaling v
    scales both; v = (a³, b³) rounds to the same 8 bits but changes 3 times faster relative to its size: finer."""
    resolution = _script().resolution
    pairs = torch.tensor([[1.3, 0.7], [-2.9, 0.1], [0.45, 3.3]], dtype=torch.float64)  # [P, 2]
    rounding = (pairs.float().bfloat16().float() - pairs.float()).double().norm(dim=-1)  # [P]
    torch.testing.assert_close(resolution(lambda p: p, pairs), rounding, rtol=1e-6, atol=0)
    torch.testing.assert_close(resolution(lambda p: 4 * p, pairs), rounding, rtol=1e-6, atol=0)
    equal = torch.tensor([[1.3, 1.3]], dtype=torch.float64)
    a_cubed = float(resolution(lambda p: p**3, equal))
    a_alone = float(resolution(lambda p: p, equal))
    assert 0 < a_cubed < 0.6 * a_alone  # 0.0017 against 0.0044 Å
