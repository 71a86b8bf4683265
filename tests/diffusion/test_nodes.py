"""The node-count distribution: sampling frequencies, log-probabilities and unsupported counts."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.diffusion import NodeCountDistribution

HISTOGRAM = torch.tensor([0, 0, 0, 5, 10, 0, 30, 55.0])


def test_sample_frequencies_match_histogram() -> None:
    distribution = NodeCountDistribution(HISTOGRAM)
    draws = distribution.sample(20000, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.int64 and draws.shape == (20000,)
    frequencies = torch.bincount(draws, minlength=8).double() / 20000
    p = HISTOGRAM.double() / HISTOGRAM.sum()
    standard_error = (p * (1 - p) / 20000).sqrt()
    assert ((frequencies - p).abs() <= 4 * standard_error + 1e-12).all()


def test_log_prob() -> None:
    distribution = NodeCountDistribution(HISTOGRAM)
    log_p = distribution.log_prob(torch.tensor([3, 7, 6]))
    torch.testing.assert_close(log_p, torch.tensor([math.log(0.05), math.log(0.55), math.log(0.3)], dtype=torch.float64))


@pytest.mark.parametrize("count", [5, 2, 8, 40, -1])
def test_unsupported_count_raises(count: int) -> None:
    distribution = NodeCountDistribution(HISTOGRAM)
    with pytest.raises(ValueError, match=rf"\[{count}\].*supported counts: 3-4, 6-7"):
        distribution.log_prob(torch.tensor([3, count]))


def test_state_dict_and_from_num_atoms() -> None:
    distribution = NodeCountDistribution.from_num_atoms(torch.tensor([3, 4, 4, 7, 7, 7]))
    assert distribution.supported == [3, 4, 7]
    restored = NodeCountDistribution(torch.ones(8))
    restored.load_state_dict(distribution.state_dict())
    torch.testing.assert_close(restored.probabilities, distribution.probabilities)
    with pytest.raises(ValueError, match="non-negative"):
        NodeCountDistribution(torch.tensor([1.0, -1.0]))
