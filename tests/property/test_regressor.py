"""The property regressor: exact invariance (float64), the role of t, the shapes, and that it learns."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.geometry.centroid import remove_centroid
from molgen.property.regressor import PropertyRegressor, RegressorConfig

from tests.models.rotations import orthogonal

SMALL = dict(hidden=16, layers=3, rbf=4)


def _inputs(num_atoms: list[int], seed: int = 0):
    """Random z_x (centroid-free), z_h and t in float64."""
    generator = torch.Generator().manual_seed(seed)
    layout = MoleculeLayout.from_num_atoms(torch.tensor(num_atoms))
    m, b = layout.batch.numel(), layout.num_molecules
    z_x = remove_centroid(torch.randn(m, 3, generator=generator, dtype=torch.float64), layout.batch, b) * 2
    z_h = torch.randn(m, 6, generator=generator, dtype=torch.float64)  # [M, 6]
    t = torch.rand(b, generator=generator, dtype=torch.float64)  # [B]
    return z_x, z_h, t, layout


def _model(noise_conditional: bool = True, seed: int = 0) -> PropertyRegressor:
    torch.manual_seed(seed)
    return PropertyRegressor(RegressorConfig(noise_conditional=noise_conditional, **SMALL)).double()


@pytest.mark.parametrize("reflect", [False, True])
def test_invariant_to_rotations_reflections_translations_and_permutations(reflect):
    model = _model()
    z_x, z_h, t, layout = _inputs([5, 3, 7])
    q = orthogonal(1, reflect=reflect)  # [3, 3]
    shift = torch.tensor([[3.0, -1.0, 2.0]], dtype=torch.float64)
    # a permutation within each molecule (atoms stay in their molecule's block)
    perm = torch.cat([start + torch.randperm(n, generator=torch.Generator().manual_seed(2))
                      for start, n in zip(layout.ptr[:-1].tolist(), layout.num_atoms.tolist())])
    expected = model(z_x, z_h, t, layout)  # [B, 1]
    moved = model((z_x @ q.T + shift)[perm], z_h[perm], t, layout)
    assert expected.shape == (3, 1)
    torch.testing.assert_close(moved, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(model(z_x * 1.1, z_h, t, layout), expected)  # it does see the geometry


def test_molecules_do_not_interact_and_order_does_not_matter():
    model = _model()
    z_x, z_h, t, layout = _inputs([4, 6])
    both = model(z_x, z_h, t, layout)
    alone = model(z_x[4:], z_h[4:], t[1:], MoleculeLayout.from_num_atoms(torch.tensor([6])))
    torch.testing.assert_close(alone, both[1:], rtol=1e-12, atol=1e-12)


def test_a_guide_sees_t_and_an_evaluator_ignores_it():
    z_x, z_h, t, layout = _inputs([5, 3])
    guide, evaluator = _model(True), _model(False)
    assert not torch.allclose(guide(z_x, z_h, t, layout), guide(z_x, z_h, t * 0, layout))
    torch.testing.assert_close(evaluator(z_x, z_h, t, layout), evaluator(z_x, z_h, t * 0, layout), rtol=0, atol=0)


def test_normalisation_travels_in_the_weights():
    model = _model()
    model.set_normalisation(6858.0, 1075.0)
    clone = PropertyRegressor(model.config).double()
    clone.load_state_dict(model.state_dict())
    assert float(clone.denormalise(torch.tensor([1.0]))) == pytest.approx(7933.0)


def test_bad_shapes_are_refused():
    z_x, z_h, t, layout = _inputs([3])
    with pytest.raises(ValueError, match="expected t"):
        _model()(z_x, z_h, t.repeat(2), layout)


def test_config_is_checked():
    with pytest.raises(ValueError, match="RegressorConfig.property must be one of"):
        RegressorConfig(property="eps")
    with pytest.raises(ValueError, match="RegressorConfig.half must be one of"):
        RegressorConfig(half="third")
    with pytest.raises(ValueError, match=r"RegressorConfig.hidden must be an integer >= 1"):
        RegressorConfig(hidden=0)


def test_it_learns_a_geometric_target_on_a_tiny_set():
    """Fit the (normalised) mean squared distance to the centroid of 8 random molecules: the L1 loss halves."""
    torch.manual_seed(0)
    model = PropertyRegressor(RegressorConfig(hidden=16, layers=2, rbf=8, noise_conditional=False))
    z_x, z_h, t, layout = _inputs([4, 5, 6, 7] * 2, seed=3)
    z_x, z_h, t = z_x.float(), z_h.float(), t.float()
    spread = torch.zeros(8).index_add_(0, layout.batch, (z_x**2).sum(dim=1)) / layout.num_atoms  # [B]
    target = (spread - spread.mean()) / (spread - spread.mean()).abs().mean()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = (model(z_x, z_h, t, layout)[:, 0] - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_the_model_registry_stays_clear_of_the_data_layer():
    """molgen.models registers the regressor; importing it must not import molgen.data (models sit below data)."""
    code = "import sys, molgen.models; print(*sorted(m for m in sys.modules if m.startswith('molgen.data')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == []
