"""Radial features in PONITA's spatial basis: added to a trained model they change nothing until trained (their
first-layer columns start at zero), they keep the symmetries, their columns get gradients, and checkpoints
without them load as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from molgen.checkpoint import load_checkpoint, load_model
from molgen.config import RunConfig
from molgen.models.grow import RADIAL, PonitaGrowth, Radial, grown_config
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.precision import set_precision

from .rotations import assert_equivariant_when_the_grid_turns, orthogonal
from .test_grow import _config, _inputs, _largest_difference, _randomised

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9_ponita_860b5b7.pt"
RADIALS = [Radial(4, "bessel", 3.0), Radial(3, "gaussian", 2.5)]  # cutoffs inside the inputs' distances (~0-6)


def _with_radial(model: Ponita, radial: Radial, layers: int | None = None, hidden: int | None = None) -> Ponita:
    """`model` grown by `radial` (and to `layers` x `hidden`, default as now), without symmetry-breaking noise."""
    c = model.config
    growth = PonitaGrowth.plan(c, model.state_dict(), layers or c.layers, hidden or c.hidden, 0.0, radial=radial)
    grown = Ponita(growth.new).double().eval()
    grown.load_state_dict(growth.apply(model.state_dict()))
    return grown


def _trained_radial_weights(model: Ponita, seed: int = 5) -> Ponita:
    """`model` with random radial columns, as training would make them (zero columns would hide their errors)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = model.spatial_basis.radial_linear.weight
        weight.copy_(torch.randn(weight.shape, generator=generator, dtype=weight.dtype))
    return model


@pytest.mark.parametrize("radial", RADIALS, ids=lambda r: r.basis)
@pytest.mark.parametrize("multiple_readouts", [True, False])
def test_added_radial_features_leave_the_function_unchanged(radial, multiple_readouts):
    model = _randomised(_config(multiple_readouts))
    batches = [_inputs(num_atoms) for num_atoms in ((5, 9, 3), (7, 7))]  # with and without padding
    for size in ((2, 16), (3, 32)):  # radial features alone, and with deepening and widening
        grown = _with_radial(model, radial, *size)
        assert grown.config.radial_features == radial.features and grown.config.radial_basis == radial.basis
        assert grown.spatial_basis.radial_linear.weight.shape == (8, 3 * radial.features)
        for inputs in batches:
            assert _largest_difference(model, grown, inputs) < 1e-6
    trained = _trained_radial_weights(_with_radial(model, radial))
    assert all(_largest_difference(model, trained, inputs) > 1e-3 for inputs in batches)  # the features are used


@pytest.mark.parametrize("radial", RADIALS, ids=lambda r: r.basis)
@pytest.mark.parametrize("reflect", [False, True])
def test_a_model_with_radial_features_keeps_the_symmetries(radial, reflect):
    model = _trained_radial_weights(_with_radial(_randomised(_config(channels_per_kernel=1)), radial))
    inputs = _inputs((5, 9, 3))
    assert_equivariant_when_the_grid_turns(model, inputs, orthogonal(5, reflect))
    z_x, z_h, t, layout = inputs
    shifted = model(z_x + torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64), z_h, t, layout)
    for a, b in zip(model(*inputs), shifted):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    permutation = torch.cat([torch.tensor([3, 0, 4, 1, 2]), 5 + torch.randperm(9), 14 + torch.arange(3)])
    for a, b in zip(model(z_x[permutation], z_h[permutation], t, layout), model(*inputs)):
        torch.testing.assert_close(a, b[permutation], atol=1e-12, rtol=0)


@pytest.mark.parametrize("radial", RADIALS, ids=lambda r: r.basis)
def test_the_zero_columns_get_gradients(radial):
    """Training can use the new columns at once: their gradient is not zero, and nothing is NaN at the self-loops
    (d = a = b = 0), also for the positions."""
    grown = _with_radial(_randomised(_config()), radial)
    z_x, z_h, t, layout = _inputs((5, 9, 3))
    z_x.requires_grad_(True)
    eps_x, eps_h = grown(z_x, z_h, t, layout)
    (eps_x.square().sum() + eps_h.square().sum()).backward()
    gradient = grown.spatial_basis.radial_linear.weight.grad  # [H, 3K]
    assert torch.isfinite(gradient).all() and torch.isfinite(z_x.grad).all()
    assert (gradient.abs().sum(dim=0) > 1e-8).all()  # every feature column, of d, a and b, moves


def test_the_same_growth_for_every_set_of_weights():
    model, ema = _randomised(_config(), 0), _randomised(_config(), 7)
    growth = PonitaGrowth.plan(model.config, model.state_dict(), 2, 16, radial=RADIALS[0])
    for state in (model.state_dict(), ema.state_dict()):
        grown = growth.apply(state)
        assert torch.equal(grown[RADIAL], torch.zeros(8, 12, dtype=torch.float64))
        assert all(torch.equal(grown[name], tensor) for name, tensor in state.items())


@pytest.mark.parametrize(("radial", "problem"), [
    (Radial(0, "bessel", 5.0), "--radial-features must be at least 1"),
    (Radial(4, "fourier", 5.0), "PonitaConfig.radial_basis must be one of 'bessel', 'gaussian'"),
    (Radial(4, "bessel", 0.0), "PonitaConfig.radial_cutoff must be a distance > 0"),
])
def test_bad_radial_growths_are_refused(radial, problem):
    with pytest.raises(ValueError, match=problem):
        grown_config(_config(), 2, 16, radial)


def test_radial_features_are_added_once():
    with pytest.raises(ValueError, match=r"already has radial features \(4 per variable\)"):
        grown_config(PonitaConfig(radial_features=4), 5, 64, RADIALS[1])


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("radial_features", -1, "PonitaConfig.radial_features must be an integer >= 0 (0: none), got -1"),
    ("radial_features", 2.5, "PonitaConfig.radial_features must be an integer >= 0 (0: none), got 2.5"),
    ("radial_basis", "Bessel", "PonitaConfig.radial_basis must be one of 'bessel', 'gaussian'; got 'Bessel'"),
    ("radial_cutoff", "far", "radial_cutoff must be a number, got 'far'"),
    ("radial_cutoff", -2.0, "PonitaConfig.radial_cutoff must be a distance > 0 in Å, got -2.0"),
    ("radial_cutoff", float("nan"), "PonitaConfig.radial_cutoff must be a distance > 0 in Å, got nan"),
])
def test_bad_radial_settings_are_one_line_errors(field, value, problem):
    with pytest.raises(ValueError) as error:
        RunConfig.from_dict(load_checkpoint(FIXTURE)["config"]).replace({f"model.config.{field}": value})
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_radial_settings_round_trip():
    config = PonitaConfig(radial_features=16, radial_basis="gaussian", radial_cutoff=6)
    assert config.radial_cutoff == 6.0 and isinstance(config.radial_cutoff, float)
    assert PonitaConfig.from_dict(config.to_dict()) == config
    assert sum(p.numel() for p in Ponita(config).spatial_basis.radial_linear.parameters()) == 32 * 48


def test_a_checkpoint_without_the_radial_keys_loads_as_before():
    raw = load_checkpoint(FIXTURE)
    assert not any(key.startswith("radial") for key in raw["config"]["model"]["config"])
    loaded = load_model(FIXTURE)
    assert loaded.model.config.radial_features == 0 and loaded.model.spatial_basis.radial is None
    assert set(loaded.model.state_dict()) == set(raw["ema"])  # no new parameter: the stored weights load strictly


@pytest.mark.parametrize("basis", ["bessel", "gaussian"])
def test_bf16_autocast_agrees_with_fp32(basis):
    """The features are computed in fp32 and rounded to bf16 only in the first layer's product. At init eps_x is small
    (a near-cancelling sum over orientations), so its relative error is larger: 3% without radial features, 5-6%
    with 8 or 16 (eps_h: 0.5% either way)."""
    torch.manual_seed(0)
    model = Ponita(PonitaConfig(radial_features=16, radial_basis=basis))
    *tensors, layout = _inputs((18, 17, 19, 20), seed=2)
    inputs = [x.float() for x in tensors] + [layout]
    eps_x, eps_h = model(*inputs)
    set_precision(model, "bf16")
    fast_x, fast_h = model(*inputs)
    assert fast_x.dtype == fast_h.dtype == torch.float32
    assert ((fast_x - eps_x).norm() / eps_x.norm()).item() < 0.1
    assert ((fast_h - eps_h).norm() / eps_h.norm()).item() < 0.02
