"""Weightings of the training loss: multipliers of each molecule's ε-L2 term at t > 0, functions of the signal-to-
noise ratio SNR(t) = alpha_t^2 / sigma_t^2 = exp(-gamma_t) (train.loss_weighting; the t = 0 term stays unweighted).

- "edm": 1, EDM's l2 loss (Hoogeboom et al. 2022);
- "min_snr": min(SNR, gamma) / SNR, min-SNR-gamma for an ε-predicting model (Hang et al., ICCV 2023, "Efficient
  Diffusion Training via Min-SNR Weighting Strategy"): the low-noise steps, whose SNR exceeds gamma, count less;
- "clamped_snr": clamp(SNR, 0.05, 1.5) / SNR: the low-noise steps count less and the noisiest (SNR < 0.05) more.
"""

from __future__ import annotations

import torch
from torch import Tensor

CLAMPED_SNR_RANGE = (0.05, 1.5)


def loss_weight(gamma_t: Tensor, weighting: str, min_snr_gamma: float = 5.0) -> Tensor:
    """The multiplier of the ε-L2 term at each molecule's gamma_t [B] -> [B] float64."""
    snr = torch.exp(-gamma_t.to(torch.float64))  # [B]
    if weighting == "edm":
        return torch.ones_like(snr)
    if weighting == "min_snr":
        return snr.clamp(max=min_snr_gamma) / snr
    if weighting == "clamped_snr":
        return snr.clamp(*CLAMPED_SNR_RANGE) / snr
    raise ValueError(f"loss weighting must be 'edm', 'min_snr' or 'clamped_snr', got {weighting!r}")
