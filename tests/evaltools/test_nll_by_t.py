"""eval/nll_by_t.py: its per-t terms add up to the bound's diffusion term, its strata cover each range once, and its
eps-MSE is the squared error per position coordinate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from molgen.diffusion import PolynomialSchedule
from molgen.diffusion.likelihood import variational_nll
from molgen.diffusion.process import sample_noise, sum_per_molecule
from tests.train.helpers import ToyMolecules, tiny_config

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "nll_by_t.py"


@pytest.fixture(scope="module")
def nll_by_t():
    spec = importlib.util.spec_from_file_location("nll_by_t", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["nll_by_t"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tiny PONITA with randomised weights (a fresh model's zero biases would hide a mixed-up t)."""
    torch.manual_seed(0)
    model = tiny_config(tmp_path_factory.mktemp("run")).model.build().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize("cuts", [[3, 6], [10], [1, 9]])
def test_strata_cover_each_step_once(nll_by_t, cuts):
    for count in (1, 2, 3, 5):
        steps = [t for low, high in nll_by_t.range_bounds(cuts, 10) for s in nll_by_t.strata(low, high, count)
                 for t in range(s.low, s.high + 1)]
        assert steps == list(range(1, 11))


def test_range_sums_add_up_to_the_bounds_diffusion_term(nll_by_t, tiny_model):
    """Summed exactly over all t (T = 10), the ranges give the mean over t of variational_nll's diffusion term."""
    schedule, batch, seed = PolynomialSchedule(10), ToyMolecules(6).batch(range(6)), 3
    ranges = [nll_by_t.strata(low, high, 10) for low, high in nll_by_t.range_bounds([2, 5], 10)]
    columns = [s for r in ranges for s in r]
    terms_x, terms_h = nll_by_t.evaluate_strata(tiny_model, schedule, [batch], columns, seed)  # [6, 10] each
    sums_x = nll_by_t.range_sums(terms_x, columns, ranges, 10).sum(1)  # [6]
    sums_h = nll_by_t.range_sums(terms_h, columns, ranges, 10).sum(1)  # [6]
    noise = sample_noise(batch.layout, torch.float64, "cpu", torch.Generator().manual_seed(seed))
    bounds = [variational_nll(tiny_model, schedule, batch, t_int=torch.full((6,), t), noise=noise, noise_0=noise)
              for t in range(1, 11)]
    expected_x = sum(b.diffusion_x for b in bounds) / 10  # E_t[T L_t] = sum_t L_t, [6]
    expected_h = sum(b.diffusion_h for b in bounds) / 10
    assert expected_x.min() > 0 and expected_h.min() > 0
    torch.testing.assert_close(sums_x, expected_x, rtol=1e-10, atol=0)
    torch.testing.assert_close(sums_h, expected_h, rtol=1e-10, atol=0)


def test_stratified_estimate_weights_each_stratum_by_its_size(nll_by_t):
    """A term table constant within each stratum makes the stratified estimate exact: sum_t L_t."""
    columns = nll_by_t.strata(1, 10, 3)  # sizes 3, 3, 4
    per_t = torch.arange(1, 11, dtype=torch.float64) ** 2  # T L_t = t^2, [10]
    terms = torch.stack([per_t[s.low - 1 : s.high].mean().expand(2) for s in columns], dim=1)  # [2, 3]
    sums = nll_by_t.range_sums(terms, columns, [columns], 10)  # [2, 1]
    torch.testing.assert_close(sums[:, 0], (per_t / 10).sum().expand(2))


def test_position_mse_is_the_squared_error_per_coordinate(nll_by_t):
    """With a zero denoiser the eps-MSE is ||eps_x||^2 / 3N."""
    schedule, batch = PolynomialSchedule(10), ToyMolecules(4).batch(range(4))

    def zero(z_x, z_h, t, layout):
        return torch.zeros_like(z_x), torch.zeros_like(z_h)

    columns = [nll_by_t.Stratum(4, 4)]
    terms_x, _ = nll_by_t.evaluate_strata(zero, schedule, [batch], columns, 0)  # [4, 1]
    mse = nll_by_t.position_mse(terms_x[:, 0], 4, schedule, batch.num_atoms)  # [4]
    eps_x, _ = sample_noise(batch.layout, torch.float64, "cpu", torch.Generator().manual_seed(0))
    expected = sum_per_molecule(eps_x**2, batch.batch, 4) / (3 * batch.num_atoms.double())
    torch.testing.assert_close(mse, expected)
