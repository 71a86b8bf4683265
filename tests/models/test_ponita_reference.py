"""The optimised PONITA equals the 860b5b7 reference (tests/models/ponita_reference.py) on the same weights.

The reference reuses the model's embedding, readouts, basis MLP, ConvNeXt MLP and norm, dense helpers and centroid
removal, so a bug there is invisible here: test_ponita_by_hand.py, tests/nn (test_basis, test_conv, test_dense) and
tests/geometry/test_centroid.py pin those parts with values computed by hand.
"""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.models.ponita import Ponita, PonitaConfig
from tests.models.ponita_reference import reference_forward

UNIFORM = (11, 11, 11, 11)  # one block, no padding (a training bucket)
MIXED = (5, 29, 3, 12, 18, 18, 7, 25, 4, 9, 22)  # several size groups, padding in each


def _inputs(num_atoms, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    layout = MoleculeLayout.from_num_atoms(torch.tensor(num_atoms))
    m = sum(num_atoms)
    z_x = torch.randn(m, 3, generator=generator, dtype=dtype)  # [M, 3]
    z_h = torch.randn(m, 6, generator=generator, dtype=dtype)  # [M, 6]
    t = torch.rand(len(num_atoms), generator=generator, dtype=dtype)  # [B]
    return z_x, z_h, t, layout


def _model(dtype, **config):
    torch.manual_seed(0)
    model = Ponita(PonitaConfig(hidden=32, layers=3, basis_dim=16, basis_hidden=16, **config)).to(dtype)
    for parameter in model.parameters():  # away from init, so every term matters
        parameter.data += 0.05 * torch.randn_like(parameter)
    return model


@pytest.mark.parametrize("num_atoms", [UNIFORM, MIXED], ids=["no-padding", "padding"])
@pytest.mark.parametrize("config", [{"channels_per_kernel": 1}, {"channels_per_kernel": 8},
                                    {"channels_per_kernel": 8, "time_in_basis": False, "multiple_readouts": False}],
                         ids=["g1", "g8", "g8-no-time"])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_forward_and_gradients_equal_the_reference(num_atoms, config, dtype, tolerance):
    model = _model(dtype, **config)
    inputs = _inputs(num_atoms, dtype)
    results = []
    for forward in (model, lambda *a: reference_forward(model, *a)):
        model.zero_grad()
        eps_x, eps_h = forward(*inputs)
        (eps_x.square().sum() + eps_h.sin().sum()).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((eps_x.detach(), eps_h.detach(), grads))
    for new, reference in zip(*results):
        assert ((new - reference).norm() / reference.norm()).item() <= tolerance
