"""Inpainting's replacement after a step t -> s puts the fixed atoms at q(z_s | fragment): gamma_s, not gamma_t
(and the start at gamma_T).

On a hand-made table where the two differ visibly (T = 4, the step 0.75 -> 0.5: gamma_t = 1, gamma_s = -2), so
alpha_s = sqrt(sigmoid(2)) = 0.940 against alpha_t = 0.523, sigma_s = 0.345 against sigma_t = 0.855.
"""

from __future__ import annotations

import math

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.diffusion import EpsModel, NoiseSchedule, StepInfo, initial_state
from molgen.diffusion.inpainting import Fragment, lay_out_fragment, repaint_hook, sample_inpainting

from .standins import EquivariantDenoiser

GAMMA = torch.tensor([-10.0, -6.0, -2.0, 1.0, 2.5], dtype=torch.float64)  # T = 4
T_FROM, T_TO = 0.75, 0.5  # gamma_t = GAMMA[3] = 1, gamma_s = GAMMA[2] = -2
ALPHA_S = math.sqrt(1 / (1 + math.exp(-2.0)))  # sqrt(sigmoid(-gamma_s)) by hand
SIGMA_S = math.sqrt(1 / (1 + math.exp(2.0)))
FRAGMENT_A = Fragment(torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.2, 0.3]], dtype=torch.float64),
                      torch.tensor([1, 3, 0]))  # C O H
FRAGMENT_B = Fragment(torch.tensor([[0.5, -1.0, 0.0], [0.0, 0.0, 2.0], [-1.0, 0.5, 0.0]], dtype=torch.float64),
                      torch.tensor([2, 0, 4]))  # N H F


def _after_step(fragment: Fragment, layout: MoleculeLayout, resample: int, seed: int):
    """The hook after the step T_FROM -> T_TO on a fixed state, with the generator at `seed`; -> state, fixed atoms."""
    schedule = NoiseSchedule(GAMMA)
    state = initial_state(layout, torch.Generator().manual_seed(100), torch.float64)
    rotation = torch.eye(3, dtype=torch.float64).expand(layout.num_molecules, 3, 3)  # [B, 3, 3]
    fixed = lay_out_fragment(fragment, layout, rotation, torch.float64, "cpu")
    hook = repaint_hook(EpsModel(EquivariantDenoiser(), schedule), fixed, resample, torch.Generator().manual_seed(seed))
    info = StepInfo(step=1, num_steps=4, t_from=T_FROM, t=T_TO, sigma_ve=math.exp(-1.0), z_x=state.z_x,
                    z_h=state.z_h, layout=layout)
    return hook(info), fixed


def _relative(z_x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The fixed atoms' positions about their own centroid, [B, K, 3]."""
    fixed = z_x[index]  # [B, K, 3]
    return fixed - fixed.mean(dim=1, keepdim=True)


@pytest.mark.parametrize("resample", [0, 2])
def test_replacement_scales_the_fragment_by_alpha_s(resample):
    """Same generator stream, two fragments: the fixed atoms differ by exactly alpha_s (y_A - y_B) in their own frame
    and alpha_s (h_A - h_B) in their features, after the step and after every RePaint round trip."""
    layout = MoleculeLayout.from_num_atoms(torch.tensor([5, 7]))
    state_a, fixed_a = _after_step(FRAGMENT_A, layout, resample, seed=3)
    state_b, fixed_b = _after_step(FRAGMENT_B, layout, resample, seed=3)
    index = fixed_a.index  # [B, K]
    difference = _relative(state_a.z_x, index) - _relative(state_b.z_x, index)  # [B, K, 3]
    torch.testing.assert_close(difference, ALPHA_S * (fixed_a.y - fixed_b.y), rtol=0, atol=1e-12)
    torch.testing.assert_close(state_a.z_h[index] - state_b.z_h[index],
                               ALPHA_S * (fixed_a.h - fixed_b.h).expand(2, 3, 6), rtol=0, atol=1e-12)


def test_replacement_noise_has_spread_sigma_s():
    """The fixed atoms' features scatter about alpha_s h with spread sigma_s: 3,000 molecules x 3 atoms x 6 channels
    give it to 0.3 % (one standard error); the test allows 2 %, sigma_t is 148 % off. The positions (18,000
    degrees of freedom) give it to 0.5 %; the test allows 3 %."""
    layout = MoleculeLayout.from_num_atoms(torch.full((3000,), 4))
    state, fixed = _after_step(FRAGMENT_A, layout, 0, seed=4)
    noise = state.z_h[fixed.index] - ALPHA_S * fixed.h  # [B, K, 6]
    spread = float(noise.pow(2).mean().sqrt())
    assert abs(spread / SIGMA_S - 1) < 0.02, (spread, SIGMA_S)
    positions = _relative(state.z_x, fixed.index) - ALPHA_S * fixed.y  # [B, K, 3]: sigma_s (eps - eps_bar)
    spread_x = float(positions.pow(2).sum(dim=(1, 2)).mean().div(3 * (3 - 1)).sqrt())
    assert abs(spread_x / SIGMA_S - 1) < 0.03, (spread_x, SIGMA_S)


def test_the_start_puts_the_fragment_at_gamma_T():
    """The first network call sees the fixed atoms at q(z_T | fragment): two fragments, one generator stream, differ
    by alpha_T (h_A - h_B) in their features, alpha_T = sqrt(sigmoid(-2.5)) = 0.277 (the next grid point: 0.940)."""
    alpha_T = math.sqrt(1 / (1 + math.exp(2.5)))
    first_inputs = []
    for fragment in (FRAGMENT_A, FRAGMENT_B):
        calls = []

        def recording(z_x, z_h, t, layout, calls=calls):
            calls.append(z_h.clone())
            return torch.zeros_like(z_x), torch.zeros_like(z_h)

        sample_inpainting(recording, NoiseSchedule(GAMMA), fragment, torch.tensor([5, 4]), steps=2,
                          generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        first_inputs.append(calls[0])
    index = torch.tensor([[0, 1, 2], [5, 6, 7]])  # the first K = 3 atoms of each molecule
    layout = MoleculeLayout.from_num_atoms(torch.tensor([5, 4]))
    identity = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    h_a, h_b = (lay_out_fragment(f, layout, identity, torch.float64, "cpu").h for f in (FRAGMENT_A, FRAGMENT_B))
    torch.testing.assert_close(first_inputs[0][index] - first_inputs[1][index],
                               (alpha_T * (h_a - h_b)).expand(2, 3, 6), rtol=0, atol=1e-12)
