"""The training loss against numbers derived by hand from EDM's definitions, with imperfect denoisers.

EDM (Hoogeboom et al. 2022, Alg. 1 and its l2 training objective), written out for one molecule of N atoms at step t:
  alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 = sigmoid(gamma_t), z_t = alpha_t [x, h] + sigma_t eps, h = [onehot/4, Z/10];
  t > 0:  1/2 (||eps_x - eps_hat_x||^2 + ||eps_h - eps_hat_h||^2) / (9 N)
  t = 0:  1/2 ||eps_x - eps_hat_x||^2 / (9 N)
          + sum_atoms -log(mass of N(10 z_Z, (10 sigma_0)^2) on [Z - 1/2, Z + 1/2] + 1e-10)
          + sum_atoms -log_softmax_k(log(mass of N(4 z_k, (4 sigma_0)^2) on [1/2, 3/2] + 1e-10))[true type]
N is the molecule's own atom count (normalization="molecule") or the batch's largest ("padded").
Everything below is computed in plain Python floats, the Gaussian masses with mpmath at 40 digits.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.diffusion import NoiseSchedule, diffusion_loss

GAMMA = [-9.0, -5.0, -1.0, 2.0, 6.0]  # a hand-made table, T = 4; sigma_0 = sqrt(sigmoid(-9)) = 0.0111
CHARGES = [1, 6, 7, 8, 9]  # H C N O F
# molecule A: C, H; molecule B: O, N, F. Positions already centroid-free.
POSITIONS = [[0.5, -0.25, 1.0], [-0.5, 0.25, -1.0],
             [1.0, 0.0, -0.5], [-0.5, 0.75, 0.25], [-0.5, -0.75, 0.25]]
TYPES = [1, 0, 3, 2, 4]
SIZES = [2, 3]
EPS_X = [[0.5, 1.0, -1.5], [-0.5, -1.0, 1.5],  # zero centroid per molecule
         [1.0, -0.5, 0.25], [0.5, 1.0, -0.75], [-1.5, -0.5, 0.5]]
# Large feature noise: at t = 0 it moves 4 z_k and 10 z_Z by up to ~0.55, near or across the bin edges, so the
# discrete terms are of order 1 (with a unit-scale noise they would be ~1e-10).
EPS_H = [[1.0, 12.0, -2.0, 0.5, 0.0, 4.0],
         [-10.0, 9.0, 0.0, 1.0, -1.0, -4.5],
         [0.5, -1.0, 2.0, 11.5, 0.0, 3.0],
         [2.0, 0.0, -11.0, -0.5, 10.0, -2.0],
         [0.0, 1.5, -1.0, 8.0, -12.5, 0.0]]
W = [[0.8 if i == j else (i - j) / 10 for j in range(6)] for i in range(6)]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _linear(z_x, z_h, t):
    """The imperfect denoiser by hand: eps_hat_x = (1/2 + t) z_x, eps_hat_h = (1 - t) z_h W."""
    eps_x = [[(0.5 + t) * v for v in row] for row in z_x]
    eps_h = [[(1 - t) * sum(row[i] * W[i][j] for i in range(6)) for j in range(6)] for row in z_h]
    return eps_x, eps_h


def _zero(z_x, z_h, t):
    return [[0.0] * 3 for _ in z_x], [[0.0] * 6 for _ in z_h]


def _log_mass(mean, scale, lower, upper) -> mpmath.mpf:
    """log(mass of N(mean, scale^2) on [lower, upper] + 1e-10), at 40 digits."""
    with mpmath.workdps(40):
        mass = mpmath.ncdf((upper - mean) / scale) - mpmath.ncdf((lower - mean) / scale)
        return mpmath.log(mass + mpmath.mpf("1e-10"))


def _discrete_terms(z_h_atom, atom_type, sigma_0) -> float:
    """-log p(Z | z_0) - log p(type | z_0) of one atom."""
    z = CHARGES[atom_type]
    charge = -_log_mass(mpmath.mpf(10 * z_h_atom[5]), 10 * sigma_0, z - 0.5, z + 0.5)
    with mpmath.workdps(40):
        logits = [_log_mass(mpmath.mpf(4 * z_h_atom[k]), 4 * sigma_0, 0.5, 1.5) for k in range(5)]
        one_hot = -(logits[atom_type] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in logits)))
    return float(charge + one_hot)


def _expected(t_int: list[int], denoiser, padded: bool = False) -> list[float]:
    """Each molecule's loss derived by hand."""
    result, start = [], 0
    for b, n in enumerate(SIZES):
        atoms = range(start, start + n)
        start += n
        g = GAMMA[t_int[b]]
        alpha, sigma = math.sqrt(_sigmoid(-g)), math.sqrt(_sigmoid(g))
        x = [POSITIONS[i] for i in atoms]
        h = [[0.25 * (k == TYPES[i]) for k in range(5)] + [CHARGES[TYPES[i]] / 10] for i in atoms]
        z_x = [[alpha * x[a][c] + sigma * EPS_X[i][c] for c in range(3)] for a, i in enumerate(atoms)]
        z_h = [[alpha * h[a][c] + sigma * EPS_H[i][c] for c in range(6)] for a, i in enumerate(atoms)]
        hat_x, hat_h = denoiser(z_x, z_h, t_int[b] / (len(GAMMA) - 1))
        error_x = sum((EPS_X[i][c] - hat_x[a][c]) ** 2 for a, i in enumerate(atoms) for c in range(3))
        error_h = sum((EPS_H[i][c] - hat_h[a][c]) ** 2 for a, i in enumerate(atoms) for c in range(6))
        denominator = 9 * (max(SIZES) if padded else n)
        if t_int[b] > 0:
            result.append(0.5 * (error_x + error_h) / denominator)
        else:
            sigma_0 = math.sqrt(_sigmoid(GAMMA[0]))
            discrete = sum(_discrete_terms(z_h[a], TYPES[i], sigma_0) for a, i in enumerate(atoms))
            result.append(0.5 * error_x / denominator + discrete)
    return result


def _as_torch_denoiser(by_hand):
    def denoiser(z_x, z_h, t, layout):
        rows_x, rows_h = [], []
        for i, molecule in enumerate(layout.batch.tolist()):
            hat_x, hat_h = by_hand([z_x[i].tolist()], [z_h[i].tolist()], float(t[molecule]))
            rows_x.append(hat_x[0])
            rows_h.append(hat_h[0])
        return torch.tensor(rows_x, dtype=z_x.dtype), torch.tensor(rows_h, dtype=z_x.dtype)

    return denoiser


def _loss(denoiser, t_int: list[int], normalization: str = "molecule") -> torch.Tensor:
    batch = MoleculeBatch.from_arrays(torch.tensor(POSITIONS, dtype=torch.float64), torch.tensor(TYPES),
                                      torch.tensor(SIZES))
    noise = (torch.tensor(EPS_X, dtype=torch.float64), torch.tensor(EPS_H, dtype=torch.float64))
    result = diffusion_loss(_as_torch_denoiser(denoiser), NoiseSchedule(torch.tensor(GAMMA)), batch,
                            normalization=normalization, t_int=torch.tensor(t_int), noise=noise)
    torch.testing.assert_close(result.loss, result.per_molecule.mean(), rtol=0, atol=1e-15)
    return result.per_molecule


def test_zero_denoiser_loss_is_half_the_noise_energy_over_9n():
    """t > 0 and eps_hat = 0: 1/2 ||eps||^2 / (9 N), whatever t. A: ||eps||^2 = 7 + 368.5 = 375.5, over 18."""
    per_molecule = _loss(_zero, [3, 1])
    assert abs(float(per_molecule[0]) - 0.5 * 375.5 / 18) < 1e-10
    assert abs(float(per_molecule[1]) - _expected([3, 1], _zero)[1]) < 1e-10


@pytest.mark.parametrize("t_int", [[3, 1], [4, 2], [0, 3], [2, 0], [0, 0]])
@pytest.mark.parametrize("normalization", ["molecule", "padded"])
def test_linear_denoiser_loss_equals_the_hand_derivation(t_int, normalization):
    """A fixed linear map, every step of a T = 4 table, t = 0 included (discrete terms of order 1)."""
    per_molecule = _loss(_linear, t_int, normalization)
    expected = _expected(t_int, _linear, padded=normalization == "padded")
    for got, want in zip(per_molecule.tolist(), expected):
        assert abs(got - want) < 1e-10, (got, want)


def test_the_discrete_terms_at_t0_are_not_small():
    """The t = 0 case tests the reconstruction branch: its discrete part is far above the test's 1e-10."""
    with_discrete = _expected([0, 0], _zero)
    position_only = [0.5 * sum(v * v for i in range(a, a + n) for v in EPS_X[i]) / (9 * n)
                     for a, n in ((0, 2), (2, 3))]
    assert min(w - p for w, p in zip(with_discrete, position_only)) > 0.1


def test_the_loss_draws_t_uniformly_on_0_to_T():
    """diffusion_loss's own draw: each t in {0..T} with frequency 1/(T + 1), within a binomial 5-sigma bound.

    20,000 molecules, T = 4: each count is 4,000 +- 57 (one sigma), the bound +- 283; a draw that never gives
    t = 0 (or t = T) misses by 70 sigma.
    """
    n, timesteps = 20_000, len(GAMMA) - 1
    batch = MoleculeBatch.from_arrays(torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]).repeat(n, 1),
                                      torch.tensor([1, 0]).repeat(n), torch.full((n,), 2))
    result = diffusion_loss(lambda z_x, z_h, t, layout: (z_x, z_h), NoiseSchedule(torch.tensor(GAMMA)), batch,
                            generator=torch.Generator().manual_seed(0))
    p = 1 / (timesteps + 1)
    counts = torch.bincount(result.t_int, minlength=timesteps + 1)  # [T + 1]
    assert counts.numel() == timesteps + 1
    for count in counts.tolist():
        assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)), counts
