"""The variance-preserving noise schedule of EDM (Hoogeboom et al. 2022): a gamma table.

z_t = alpha_t * x + sigma_t * eps with alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 = sigmoid(gamma_t),
SNR_t = alpha_t^2 / sigma_t^2 = exp(-gamma_t). The table gamma[0..T] is indexed by the integer time step;
a continuous time t in [0, 1] maps to round(t * T) as in EDM (`gamma`), or to a linear interpolation of the
table (`gamma_continuous`, the inverse of `t_from_gamma`, used by the few-step samplers).

The variance-exploding view (Karras et al. 2022) of the same process: x_ve = z_t / alpha_t at the noise level
sigma_ve = sigma_t / alpha_t = exp(gamma_t / 2), so alpha_t = 1 / sqrt(1 + sigma_ve^2) (`to_ve`, `to_vp`,
`NoiseSchedule.t_from_sigma_ve`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from molgen.diffusion._float64 import Float64Buffers
from molgen.elements import NORM_VALUES

# EDM refuses a schedule whose sigma_0 is not small against the bins of the discrete features:
# NUM_STDEVS * sigma_0 must stay below 1 / max(norm values) (check_issues_norm_values in EDM).
NUM_STDEVS = 8.0
MAX_NORM_VALUE = max(NORM_VALUES)  # the largest scaling of the discrete features (charge / 10)


def polynomial_2_gamma(timesteps: int = 1000, precision: float = 1e-5) -> Tensor:
    """EDM's `polynomial_2` schedule as gamma = log(sigma^2 / alpha^2), float64 [T + 1].

    alpha^2 = (1 - (u / M)^2)^2 on u = linspace(0, M, M), M = T + 1; the step ratios alpha^2_t / alpha^2_{t-1}
    are clipped below at 0.001 and re-multiplied; then alpha^2 <- (1 - 2 s) alpha^2 + s with s = precision.
    """
    _check_polynomial(timesteps, precision)
    steps = timesteps + 1
    u = torch.linspace(0, steps, steps, dtype=torch.float64)  # [T + 1]
    alpha2 = (1 - (u / steps) ** 2) ** 2  # [T + 1]
    previous = torch.cat([alpha2.new_ones(1), alpha2[:-1]])  # [T + 1]
    alpha2 = torch.cumprod((alpha2 / previous).clamp(min=0.001, max=1.0), dim=0)  # [T + 1]
    alpha2 = (1 - 2 * precision) * alpha2 + precision  # [T + 1]
    sigma2 = 1 - alpha2  # [T + 1]
    return torch.log(sigma2) - torch.log(alpha2)  # [T + 1]


def _check_polynomial(timesteps: int, precision: float) -> None:
    """Validate the polynomial schedule's fields (ValueError naming the field)."""
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}")
    if not 0.0 < precision < 0.5:
        raise ValueError(f"precision must lie in (0, 0.5), got {precision!r}")
    sigma_0 = math.sqrt(precision)  # sigma_0^2 = precision exactly for this schedule
    if NUM_STDEVS * sigma_0 >= 1.0 / MAX_NORM_VALUE:
        raise ValueError(
            f"precision={precision!r} gives sigma_0={sigma_0:.4g}, but EDM requires {NUM_STDEVS:g} * sigma_0 < "
            f"1 / {MAX_NORM_VALUE:g} so the discrete features stay decodable: use precision < "
            f"{(1.0 / (MAX_NORM_VALUE * NUM_STDEVS)) ** 2:.6g}"
        )


def alpha(gamma: Tensor) -> Tensor:
    """alpha = sqrt(sigmoid(-gamma))."""
    return torch.sigmoid(-gamma).sqrt()


def sigma(gamma: Tensor) -> Tensor:
    """sigma = sqrt(sigmoid(gamma))."""
    return torch.sigmoid(gamma).sqrt()


def SNR(gamma: Tensor) -> Tensor:  # noqa: N802 (the paper's name)
    """SNR = alpha^2 / sigma^2 = exp(-gamma)."""
    return torch.exp(-gamma)


def sigma_ve(gamma: Tensor) -> Tensor:
    """The variance-exploding noise level sigma / alpha = exp(gamma / 2) (Karras et al. 2022)."""
    return torch.exp(0.5 * gamma)


def to_ve(z: Tensor, level: float) -> Tensor:
    """The VE state x_ve = z / alpha = z sqrt(1 + level^2) of a VP state z [...] at the noise level sigma_ve = level."""
    return z * math.sqrt(1 + level**2)


def to_vp(x_ve: Tensor, level: float) -> Tensor:
    """The VP state z = alpha x_ve = x_ve / sqrt(1 + level^2) of a VE state x_ve [...] at sigma_ve = level."""
    return x_ve * (1 / math.sqrt(1 + level**2))


def log_alpha2_t_given_s(gamma_t: Tensor, gamma_s: Tensor) -> Tensor:
    """log alpha^2_{t|s} = log(alpha_t^2 / alpha_s^2) = softplus(gamma_s) - softplus(gamma_t)."""
    return F.softplus(gamma_s) - F.softplus(gamma_t)


def alpha_t_given_s(gamma_t: Tensor, gamma_s: Tensor) -> Tensor:
    """alpha_{t|s} = alpha_t / alpha_s."""
    return torch.exp(0.5 * log_alpha2_t_given_s(gamma_t, gamma_s))


def sigma2_t_given_s(gamma_t: Tensor, gamma_s: Tensor) -> Tensor:
    """sigma^2_{t|s} = sigma_t^2 - alpha^2_{t|s} sigma_s^2 = -expm1(softplus(gamma_s) - softplus(gamma_t))."""
    return -torch.expm1(log_alpha2_t_given_s(gamma_t, gamma_s))


class NoiseSchedule(Float64Buffers):
    """A discrete VP schedule given by its gamma table [T + 1], with alpha, sigma and SNR tables; all float64 buffers.

    The buffers move with `.to(device)`, are saved in the state dict and stay float64 under dtype casts.
    """

    gamma_table: Tensor
    alpha_table: Tensor
    sigma_table: Tensor
    SNR_table: Tensor

    def __init__(self, gamma: Tensor) -> None:
        super().__init__()
        gamma = torch.as_tensor(gamma, dtype=torch.float64).detach().clone()  # [T + 1]
        if gamma.ndim != 1 or gamma.numel() < 2:
            raise ValueError(f"gamma must be a table of T + 1 >= 2 values, got shape {tuple(gamma.shape)}")
        if not torch.isfinite(gamma).all() or not (gamma[1:] > gamma[:-1]).all():
            raise ValueError("gamma must be finite and strictly increasing in t")
        sigma_0 = float(sigma(gamma[0]))
        if NUM_STDEVS * sigma_0 >= 1.0 / MAX_NORM_VALUE:
            raise ValueError(
                f"gamma[0]={float(gamma[0]):.6g} gives sigma_0={sigma_0:.4g}, but EDM requires "
                f"{NUM_STDEVS:g} * sigma_0 < 1 / {MAX_NORM_VALUE:g}"
            )
        self.register_buffer("gamma_table", gamma)  # [T + 1]
        self.register_buffer("alpha_table", alpha(gamma))  # [T + 1]
        self.register_buffer("sigma_table", sigma(gamma))  # [T + 1]
        self.register_buffer("SNR_table", SNR(gamma))  # [T + 1]

    @property
    def timesteps(self) -> int:
        """T, the number of diffusion steps (the table has T + 1 entries)."""
        return self.gamma_table.numel() - 1

    def t_int_from_t(self, t: Tensor) -> Tensor:
        """The integer step round(t * T) of a time t in [0, 1] (EDM's PredefinedNoiseSchedule), int64."""
        return torch.round(t.to(torch.float64) * self.timesteps).long()

    def gamma_at(self, t_int: Tensor) -> Tensor:
        """gamma at integer steps t_int in {0..T}, float64."""
        return self.gamma_table[t_int.long()]

    def gamma(self, t: Tensor) -> Tensor:
        """gamma at times t in [0, 1], read at the nearest table step round(t * T) as EDM does, float64."""
        return self.gamma_at(self.t_int_from_t(t))

    def gamma_continuous(self, t: Tensor) -> Tensor:
        """gamma at times t in [0, 1] by linear interpolation of the table in t * T, float64."""
        position = (t.to(torch.float64) * self.timesteps).clamp(0, self.timesteps)  # [...]
        lower = position.floor().long().clamp(max=self.timesteps - 1)  # [...]
        fraction = position - lower  # [...]
        return torch.lerp(self.gamma_table[lower], self.gamma_table[lower + 1], fraction)

    def t_from_gamma(self, gamma: Tensor) -> Tensor:
        """The time t in [0, 1] whose interpolated gamma (`gamma_continuous`) equals `gamma`; float64.

        Raises ValueError for gamma outside [gamma_0, gamma_T] (beyond a 1e-9 tolerance).
        """
        gamma = gamma.to(torch.float64)
        low, high = self.gamma_table[0], self.gamma_table[-1]
        if ((gamma < low - 1e-9) | (gamma > high + 1e-9)).any():
            raise ValueError(f"gamma must lie in the schedule's range [{float(low):.6g}, {float(high):.6g}]")
        gamma = gamma.clamp(low, high)
        upper = torch.searchsorted(self.gamma_table, gamma).clamp(1, self.timesteps)  # [...]
        gamma_lower, gamma_upper = self.gamma_table[upper - 1], self.gamma_table[upper]  # [...]
        fraction = (gamma - gamma_lower) / (gamma_upper - gamma_lower)  # [...]
        return (upper - 1 + fraction) / self.timesteps

    def t_from_sigma_ve(self, sigma_ve: float) -> float:
        """The time t in [0, 1] whose interpolated gamma is 2 log sigma_ve (the inverse of sigma_ve at t)."""
        gamma = torch.tensor(2 * math.log(sigma_ve), dtype=torch.float64, device=self.gamma_table.device)
        return float(self.t_from_gamma(gamma))

    def extra_repr(self) -> str:
        gamma_0, gamma_T = float(self.gamma_table[0]), float(self.gamma_table[-1])
        return f"timesteps={self.timesteps}, gamma_0={gamma_0:.6g}, gamma_T={gamma_T:.6g}"


class PolynomialSchedule(NoiseSchedule):
    """EDM's `polynomial_2` schedule (the QM9 setting): T steps, precision s (sigma_0^2 = s)."""

    def __init__(self, timesteps: int = 1000, precision: float = 1e-5) -> None:
        super().__init__(polynomial_2_gamma(timesteps, precision))
        self.precision = precision

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, precision={self.precision:g}"
