"""EDM's polynomial_2 schedule: golden values, validation, buffers, lookups and the t|s quantities."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.diffusion.schedule import (
    NoiseSchedule,
    PolynomialSchedule,
    alpha,
    alpha_t_given_s,
    sigma,
    sigma2_t_given_s,
    to_ve,
    to_vp,
)

GOLDEN = {0: -11.512916, 1: -11.330595, 2: -10.925131, 500: -0.251309, 999: 11.176730, 1000: 11.512516}


def test_golden_values() -> None:
    schedule = PolynomialSchedule(1000, 1e-5)
    for t, value in GOLDEN.items():
        assert float(schedule.gamma_table[t]) == pytest.approx(value, abs=1e-5)
    assert float(schedule.sigma_table[0]) == pytest.approx(3.1623e-3, abs=1e-7)
    # alpha_T^2 = s + 0.001 * (1 - 2 s) * alpha^2_raw[T - 1] = 1.0004e-5: 3.1629e-3, FACTS' 3.1623e-3 to 2e-4 relative
    assert float(schedule.alpha_table[-1]) == pytest.approx(3.1623e-3, rel=3e-4)
    assert float(schedule.SNR_table[500]) == pytest.approx(float(torch.exp(torch.tensor(0.251309))), rel=1e-5)


def test_tables_consistent_and_float64() -> None:
    schedule = PolynomialSchedule(50)
    assert schedule.gamma_table.dtype == torch.float64 and schedule.gamma_table.shape == (51,)
    torch.testing.assert_close(schedule.alpha_table**2 + schedule.sigma_table**2, torch.ones(51, dtype=torch.float64))
    torch.testing.assert_close(schedule.SNR_table, schedule.alpha_table**2 / schedule.sigma_table**2)
    assert (schedule.gamma_table.diff() > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"timesteps": 0}, "timesteps"), ({"timesteps": 2.5}, "timesteps"), ({"precision": 0.0}, "precision"),
     ({"precision": 0.5}, "precision"), ({"precision": 2e-4}, "precision")],
)
def test_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PolynomialSchedule(**kwargs)


def test_hand_made_schedule_validation() -> None:
    with pytest.raises(ValueError, match="increasing"):
        NoiseSchedule(torch.tensor([-10.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="gamma"):
        NoiseSchedule(torch.tensor([-4.0, 0.0, 3.0]))  # sigma_0 = 0.135: 8 sigma_0 >= 1/10


def test_buffers_move_save_and_stay_float64() -> None:
    schedule = PolynomialSchedule(20)
    assert set(schedule.state_dict()) == {"gamma_table", "alpha_table", "sigma_table", "SNR_table"}
    schedule.to(torch.float32).half()
    assert schedule.gamma_table.dtype == torch.float64
    other = PolynomialSchedule(20, precision=1e-4)
    other.load_state_dict(PolynomialSchedule(20).state_dict())
    torch.testing.assert_close(other.gamma_table, schedule.gamma_table, rtol=0, atol=0)


def test_lookups() -> None:
    schedule = PolynomialSchedule(1000)
    t_int = torch.tensor([0, 1, 7, 500, 1000])
    t = t_int.double() / 1000
    torch.testing.assert_close(schedule.gamma(t.float()), schedule.gamma_table[t_int], rtol=0, atol=0)
    torch.testing.assert_close(schedule.gamma_continuous(t), schedule.gamma_table[t_int], rtol=0, atol=1e-12)
    t_any = torch.rand(100, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(schedule.t_from_gamma(schedule.gamma_continuous(t_any)), t_any, rtol=0, atol=1e-12)
    middle = schedule.gamma_continuous(torch.tensor([0.0005], dtype=torch.float64))
    torch.testing.assert_close(middle, schedule.gamma_table[:2].mean().reshape(1))
    with pytest.raises(ValueError, match="range"):
        schedule.t_from_gamma(torch.tensor([12.0]))


def test_t_given_s_quantities() -> None:
    gamma_t = torch.tensor([-11.0, -2.0, 0.5, 11.0], dtype=torch.float64)
    gamma_s = torch.tensor([-11.5, -5.0, 0.4, -11.5], dtype=torch.float64)
    torch.testing.assert_close(alpha_t_given_s(gamma_t, gamma_s), alpha(gamma_t) / alpha(gamma_s))
    expected = sigma(gamma_t) ** 2 - alpha_t_given_s(gamma_t, gamma_s) ** 2 * sigma(gamma_s) ** 2
    torch.testing.assert_close(sigma2_t_given_s(gamma_t, gamma_s), expected)
    tiny = sigma2_t_given_s(torch.tensor([-11.0], dtype=torch.float64), torch.tensor([-11.0 - 1e-9], dtype=torch.float64))
    assert float(tiny) == pytest.approx(1e-9 * float(torch.sigmoid(torch.tensor(-11.0, dtype=torch.float64))), rel=1e-6)


def test_the_variance_exploding_view() -> None:
    """x_ve = z / alpha_t at sigma_ve = sigma_t / alpha_t, and back; t_from_sigma_ve inverts sigma_ve at the table's
    steps and between them (the interpolated gamma)."""
    schedule = PolynomialSchedule(1000)
    t_int = torch.tensor([0, 1, 7, 500, 999, 1000])
    z = torch.randn(6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # [6, 9]
    for i, step in enumerate(t_int.tolist()):
        level = float(schedule.sigma_table[step] / schedule.alpha_table[step])
        assert level == pytest.approx(math.exp(0.5 * float(schedule.gamma_table[step])), rel=1e-12)
        torch.testing.assert_close(to_ve(z[i], level), z[i] / schedule.alpha_table[step], rtol=1e-12, atol=0)
        torch.testing.assert_close(to_vp(to_ve(z[i], level), level), z[i], rtol=1e-14, atol=0)
        assert schedule.t_from_sigma_ve(level) == pytest.approx(step / 1000, abs=1e-12)
    between = math.exp(0.25 * float(schedule.gamma_table[7] + schedule.gamma_table[8]))  # gamma halfway from 7 to 8
    assert schedule.t_from_sigma_ve(between) == pytest.approx(7.5 / 1000, abs=1e-12)
