"""The loss weightings through `diffusion_loss` at fixed t, against multipliers computed by hand.

The hand-made table of test_loss_by_hand: gamma = [-9, -5, -1, 2, 6], so SNR = exp(-gamma) = e^9, e^5, e, e^-2, e^-6.
  min_snr (gamma 5):   t = 1: 5 / e^5; t = 2, 3, 4: SNR <= 5, weight 1.
  min_snr (gamma 1):   t = 1: 1 / e^5; t = 2: 1 / e; t = 3, 4: 1.
  clamped_snr:         t = 1: 1.5 / e^5; t = 2: 1.5 / e; t = 3: SNR = 0.135 inside [0.05, 1.5], 1; t = 4: 0.05 e^6.
The t = 0 term (EDM's reconstruction term) is never weighted.
"""

from __future__ import annotations

import math

import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.diffusion import NoiseSchedule, diffusion_loss
from molgen.diffusion.weighting import loss_weight

from .test_loss_by_hand import EPS_H, EPS_X, GAMMA, POSITIONS, SIZES, TYPES, _as_torch_denoiser, _expected, _linear

MULTIPLIERS = {
    ("min_snr", 5.0): [1.0, 5 * math.exp(-5), 1.0, 1.0, 1.0],
    ("min_snr", 1.0): [1.0, math.exp(-5), math.exp(-1), 1.0, 1.0],
    ("clamped_snr", 5.0): [1.0, 1.5 * math.exp(-5), 1.5 * math.exp(-1), 1.0, 0.05 * math.exp(6)],
    ("edm", 5.0): [1.0] * 5,
}


def _weighted(t_int: list[int], **weighting) -> torch.Tensor:
    batch = MoleculeBatch.from_arrays(torch.tensor(POSITIONS, dtype=torch.float64), torch.tensor(TYPES),
                                      torch.tensor(SIZES))
    noise = (torch.tensor(EPS_X, dtype=torch.float64), torch.tensor(EPS_H, dtype=torch.float64))
    result = diffusion_loss(_as_torch_denoiser(_linear), NoiseSchedule(torch.tensor(GAMMA)), batch,
                            t_int=torch.tensor(t_int), noise=noise, **weighting)
    torch.testing.assert_close(result.loss, result.per_molecule.mean(), rtol=0, atol=1e-15)
    return result.per_molecule


@pytest.mark.parametrize(("weighting", "gamma"), list(MULTIPLIERS))
@pytest.mark.parametrize("t_int", [[1, 2], [3, 4], [0, 4], [2, 0]])
def test_each_weighting_multiplies_the_hand_derived_terms(weighting, gamma, t_int):
    per_molecule = _weighted(t_int, weighting=weighting, min_snr_gamma=gamma)
    for b, (got, unweighted) in enumerate(zip(per_molecule.tolist(), _expected(t_int, _linear))):
        want = MULTIPLIERS[(weighting, gamma)][t_int[b]] * unweighted
        assert abs(got - want) < 1e-10 * max(1.0, abs(want)), (weighting, t_int, b, got, want)


def test_the_multipliers_are_not_all_one():
    """Every weighting but EDM's moves some term by more than the tests' tolerance (the table above is no no-op)."""
    for (weighting, _), multipliers in MULTIPLIERS.items():
        assert (weighting == "edm") == all(m == 1.0 for m in multipliers)


def test_edm_is_the_unweighted_loss_bit_for_bit():
    assert torch.equal(_weighted([1, 3], weighting="edm"), _weighted([1, 3]))


def test_min_snr_on_the_real_schedule():
    """On EDM's polynomial_2 table: min_snr weight min(SNR, 5) / SNR is 1 exactly where SNR <= 5, and < 1 where
    SNR > 5 (the low-noise steps)."""
    from molgen.diffusion import PolynomialSchedule

    gamma = PolynomialSchedule(1000, 1e-5).gamma_table.to(torch.float64)  # [1001]
    snr = torch.exp(-gamma)  # [1001]
    min_snr = loss_weight(gamma, "min_snr", 5.0)  # [1001]
    assert torch.equal(min_snr[snr <= 5], torch.ones_like(min_snr[snr <= 5]))
    torch.testing.assert_close(min_snr[snr > 5], 5 / snr[snr > 5], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="loss weighting"):
        loss_weight(gamma, "snr")
