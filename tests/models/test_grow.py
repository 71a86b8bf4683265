"""Growing a PONITA (Net2Net): the grown model computes what the original did, keeps its symmetries, and its
copied channels come apart in training."""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.models.grow import NOISY, PonitaGrowth, grown_config
from molgen.models.ponita import Ponita, PonitaConfig

from .rotations import assert_equivariant_when_the_grid_turns, orthogonal

GROWTHS = {"deeper": (4, 16), "wider": (2, 32), "both": (3, 48)}  # from 2 layers x 16 channels


def _config(multiple_readouts=True, channels_per_kernel=8, layer_scale=None) -> PonitaConfig:
    return PonitaConfig(orientations=6, hidden=16, layers=2, basis_dim=8, basis_hidden=8, degree=2,
                        channels_per_kernel=channels_per_kernel, multiple_readouts=multiple_readouts,
                        layer_scale=layer_scale)


def _randomised(config: PonitaConfig, seed: int = 0) -> Ponita:
    """A float64 PONITA with every parameter random, LayerNorm's and the biases included (a fresh model's unit
    norms and zero biases would hide a wrong copy or split)."""
    torch.manual_seed(seed)
    model = Ponita(config).double().eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model


def _inputs(num_atoms, seed=0):
    """Random molecules; (5, 9, 3) run as one block padded to 9 atoms, (7, 7) without padding."""
    generator = torch.Generator().manual_seed(seed)
    layout = MoleculeLayout.from_num_atoms(torch.tensor(num_atoms))
    m = sum(num_atoms)
    return (torch.randn(m, 3, generator=generator, dtype=torch.float64),
            torch.randn(m, 6, generator=generator, dtype=torch.float64),
            torch.rand(len(num_atoms), generator=generator, dtype=torch.float64), layout)


def _grown(model: Ponita, layers: int, hidden: int, noise_scale: float = 0.0, seed: int = 0) -> Ponita:
    growth = PonitaGrowth.plan(model.config, model.state_dict(), layers, hidden, noise_scale, seed)
    grown = Ponita(growth.new).double().eval()
    grown.load_state_dict(growth.apply(model.state_dict()))
    return grown


def _largest_difference(a: Ponita, b: Ponita, inputs) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a(*inputs), b(*inputs)))


@pytest.mark.parametrize("channels_per_kernel", [1, 8])
@pytest.mark.parametrize("multiple_readouts", [True, False])
def test_the_grown_model_computes_what_the_original_did(channels_per_kernel, multiple_readouts):
    model = _randomised(_config(multiple_readouts, channels_per_kernel))
    batches = [_inputs(num_atoms) for num_atoms in ((5, 9, 3), (7, 7))]  # with and without padding
    assert all(max(out.abs().max().item() for out in model(*inputs)) > 1.0 for inputs in batches)  # not trivial
    for growth, size in GROWTHS.items():
        grown = _grown(model, *size)
        assert (grown.config.layers, grown.config.hidden) == size
        for inputs in batches:
            assert _largest_difference(model, grown, inputs) < 1e-6, growth


def test_layer_scale_and_the_new_blocks_readouts():
    model = _randomised(_config(layer_scale=0.3))
    grown = _grown(model, 3, 32)
    assert _largest_difference(model, grown, _inputs((5, 9, 3))) < 1e-6
    assert torch.all(grown.blocks[2].mlp[2].weight == 0) and torch.all(grown.readouts[2].weight == 0)
    assert grown.blocks[2].mlp[0].weight.abs().min() > 0  # the rest of a new block is a fresh initialisation
    assert torch.equal(grown.readouts[0].bias, model.readouts[0].bias * 1.5)


@pytest.mark.parametrize("growth", ["wider", "both"])
def test_the_symmetry_breaking_noise_changes_the_output_at_second_order(growth):
    model = _randomised(_config())
    inputs = _inputs((5, 9, 3))
    small, large = (_largest_difference(model, _grown(model, *GROWTHS[growth], s), inputs) for s in (1e-3, 1e-2))
    assert 1e-9 < small < 1e-4
    assert 50 < large / small < 200  # noise not centred over the copies changes it at first order: ~10


@pytest.mark.parametrize("reflect", [False, True])
def test_the_grown_model_keeps_the_symmetries(reflect):
    grown = _grown(_randomised(_config(channels_per_kernel=1)), *GROWTHS["both"], noise_scale=1e-2)
    inputs = _inputs((5, 9, 3))
    assert_equivariant_when_the_grid_turns(grown, inputs, orthogonal(5, reflect))
    z_x, z_h, t, layout = inputs
    shifted = grown(z_x + torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64), z_h, t, layout)
    for a, b in zip(grown(*inputs), shifted):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_the_same_growth_for_every_set_of_weights():
    """The model and its EMA get the same new blocks and the same noise: their difference is only widened."""
    model, ema = _randomised(_config(), 0), _randomised(_config(), 7)
    growth = PonitaGrowth.plan(model.config, model.state_dict(), 3, 32, 1e-2, seed=3)
    exact = PonitaGrowth.plan(model.config, model.state_dict(), 3, 32, 0.0, seed=3)
    grown_model, grown_ema = growth.apply(model.state_dict()), growth.apply(ema.state_dict())
    exact_model, exact_ema = exact.apply(model.state_dict()), exact.apply(ema.state_dict())
    for name in grown_model:
        torch.testing.assert_close(grown_ema[name] - grown_model[name], exact_ema[name] - exact_model[name],
                                   atol=1e-12, rtol=0)
    assert any(not torch.equal(grown_model[name], exact_model[name]) for name in grown_model if NOISY.fullmatch(name))


@pytest.mark.parametrize(("layers", "hidden", "problem"), [
    (1, 16, "fewer than the model's 2 layers"),
    (2, 24, "not a multiple of the model's width 16"),
    (2, 8, "not a multiple of the model's width 16"),
    (2, 16, "nothing to grow"),
])
def test_sizes_that_are_no_growth_are_refused(layers, hidden, problem):
    with pytest.raises(ValueError, match=problem):
        grown_config(_config(), layers, hidden)
