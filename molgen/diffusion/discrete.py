"""p(h | z_0) for the discrete features: EDM's Gaussians integrated over unit bins (Hoogeboom et al. 2022).

Both terms read z_0 directly (not the network) and use the VP sigma_0, scaled by the feature's normalisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_EPSILON = 1e-10  # EDM adds it inside every log of a bin mass


def normal_interval_mass(lower: Tensor, upper: Tensor) -> Tensor:
    """Mass of the standard normal on [lower, upper], accurate in both tails (erfc on the far side of 0)."""
    root2 = math.sqrt(2.0)
    right_tail = 0.5 * (torch.erfc(lower / root2) - torch.erfc(upper / root2))  # both >= 0
    left_tail = 0.5 * (torch.erfc(-upper / root2) - torch.erfc(-lower / root2))  # both <= 0
    straddle = 1.0 - 0.5 * torch.erfc(-lower / root2) - 0.5 * torch.erfc(upper / root2)
    return torch.where(lower >= 0, right_tail, torch.where(upper <= 0, left_tail, straddle))


def neg_log_p_charge_given_z0(z0_charge: Tensor, charge: Tensor, sigma_0: Tensor, norm_value: float) -> Tensor:
    """-log of the mass of N(norm * z0, (norm * sigma_0)^2) on [Z - 0.5, Z + 0.5] (+1e-10), per atom [M].

    Shapes: z0_charge [M], charge [M] (atomic numbers Z), sigma_0 scalar or [M].
    """
    mean = norm_value * z0_charge  # [M]
    scale = norm_value * sigma_0  # [] or [M]
    mass = normal_interval_mass((charge - 0.5 - mean) / scale, (charge + 0.5 - mean) / scale)  # [M]
    return -torch.log(mass + LOG_EPSILON)  # [M]


def neg_log_p_one_hot_given_z0(z0_one_hot: Tensor, atom_type: Tensor, sigma_0: Tensor, norm_value: float) -> Tensor:
    """-log softmax_k log(mass of N(norm * z0_k, (norm * sigma_0)^2) on [0.5, 1.5] + 1e-10) at the true type, [M].

    Shapes: z0_one_hot [M, K], atom_type [M] int64, sigma_0 scalar or [M].
    """
    mean = norm_value * z0_one_hot  # [M, K]
    scale = norm_value * torch.as_tensor(sigma_0, dtype=mean.dtype, device=mean.device)  # [] or [M]
    scale = scale.reshape(-1, 1) if scale.ndim else scale  # [] or [M, 1]
    mass = normal_interval_mass((0.5 - mean) / scale, (1.5 - mean) / scale)  # [M, K]
    log_p = torch.log_softmax(torch.log(mass + LOG_EPSILON), dim=1)  # [M, K]
    return -log_p.gather(1, atom_type.long().unsqueeze(1)).squeeze(1)  # [M]
