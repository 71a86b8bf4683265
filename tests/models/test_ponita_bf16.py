"""bf16 autocast against fp32 on the shipped model: how far the network's prediction moves when it runs in bf16.

The float64 reference tests (test_ponita_reference.py) run without autocast, so they cannot see what bf16 does. Here
the shipped checkpoint predicts eps for 24 noisy molecules (sizes from its own histogram) at several t, in fp32 and
under bf16 autocast (geometry in fp32, as always). Measured: relative L2 differences of 0.3-1.9% for eps_x and
0.3-0.4% for eps_h; the bounds are 3% and 1%, so a change that runs more of the network in bf16 must show that it
stays within them (and a bf16 run that silently fell back to fp32 fails the lower bound, > 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.checkpoint import load_model
from molgen.geometry.centroid import remove_centroid
from molgen.precision import set_precision

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "qm9_ponita_cpu.pt"


@pytest.fixture(scope="module")
def shipped():
    return load_model(SHIPPED)


def _noisy_molecules(loaded, count: int = 24):
    generator = torch.Generator().manual_seed(0)
    counts = loaded.node_distribution.sample(count, generator)  # [B]
    layout = MoleculeLayout.from_num_atoms(counts)
    atoms = int(counts.sum())
    z_x = remove_centroid(torch.randn(atoms, 3, generator=generator), layout.batch, count)  # [M, 3]
    return z_x, torch.randn(atoms, 6, generator=generator), layout  # [M, 3], [M, 6]


@pytest.mark.parametrize("t", [0.0, 0.1, 0.3, 1.0])
def test_bf16_prediction_stays_near_fp32(shipped, t):
    model = shipped.model.eval()
    z_x, z_h, layout = _noisy_molecules(shipped)
    time = torch.full((layout.num_molecules,), t)  # [B]
    outputs = {}
    for precision in ("fp32", "bf16"):
        set_precision(model, precision)
        with torch.inference_mode():
            outputs[precision] = model(z_x, z_h, time, layout)
    set_precision(model, "fp32")
    (bf16_x, bf16_h), (fp32_x, fp32_h) = outputs["bf16"], outputs["fp32"]
    assert bf16_x.dtype == torch.float32  # outputs come back in the inputs' dtype
    assert 0 < ((bf16_x - fp32_x).norm() / fp32_x.norm()).item() < 0.03
    assert 0 < ((bf16_h - fp32_h).norm() / fp32_h.norm()).item() < 0.01
