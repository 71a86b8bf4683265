"""PONITA's shared parts against values computed by hand: lifting (the embedding), the readouts (scalars: mean over
orientations; the vector (3/O) Σ_o f(o) o, centroid removed; several readouts averaged), and one ConvNeXt block
with a constant kernel basis (the spatial sum with its self-loop, the spherical 1/O, LayerNorm, the MLP, the
residual). The reference comparison (test_ponita_reference.py) reuses these modules, so it cannot see a bug in them.

Tiny models with small fixed weights on a hand-chosen grid of two orientations, o1 = (1, 0, 0) and o2 = (0, 1, 0),
whose mean is (1/2, 1/2, 0). Everything expected is computed below in plain Python floats.
"""

from __future__ import annotations

import math

import torch

from molgen.batch import MoleculeLayout
from molgen.models.ponita import Ponita, PonitaConfig

GRID = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
SIZES = [2, 3]
Z_X = [[0.3, -0.2, 0.1], [-0.3, 0.2, -0.1], [1.0, 0.0, 0.5], [-0.5, 0.5, 0.0], [-0.5, -0.5, -0.5]]
Z_H = [[0.25, 0.0, -0.5, 0.0, 0.1, 0.6], [0.0, 0.25, 0.0, 0.5, -0.1, 0.1],
       [0.1, 0.0, 0.25, 0.0, -0.3, 0.7], [-0.2, 0.3, 0.0, 0.25, 0.0, 0.8], [0.0, 0.0, 0.1, -0.4, 0.25, 0.9]]
T = [0.25, 0.75]
EMBED = [[1.0, 0.0, 0.5, 0.0, -1.0, 0.5, 1.0], [0.0, 1.0, -1.0, 0.5, 0.0, 0.0, -2.0]]  # [C = 2, 7]
READOUTS = [([[0.5, -1.0], [1.0, 0.0], [0.0, 2.0], [-0.5, 0.5], [1.5, 1.0], [0.0, -0.5], [1.0, 2.0]],
             [0.1, 0.0, -0.2, 0.0, 0.3, 0.0, 0.5]),
            ([[0.0, 1.0], [-1.0, 0.5], [2.0, 0.0], [0.5, 0.5], [0.0, -1.0], [1.0, 1.0], [-0.5, 1.5]],
             [0.0, 0.2, 0.0, -0.1, 0.0, 0.4, -0.25])]  # (weight [7, 2], bias [7]) per readout


def _f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _config(layers: int, multiple_readouts: bool) -> PonitaConfig:
    return PonitaConfig(orientations=2, hidden=2, layers=layers, basis_dim=1, channels_per_kernel=1, basis_hidden=1,
                        degree=1, multiple_readouts=multiple_readouts)


def _model(config: PonitaConfig) -> Ponita:
    model = Ponita(config).double().eval()
    with torch.no_grad():
        model.grid.copy_(_f64(GRID))
        model.embed.weight.copy_(_f64(EMBED))
        for readout, (weight, bias) in zip(model.readouts, READOUTS):
            readout.weight.copy_(_f64(weight))
            readout.bias.copy_(_f64(bias))
    return model


def _run(model: Ponita) -> tuple[torch.Tensor, torch.Tensor]:
    layout = MoleculeLayout.from_num_atoms(torch.tensor(SIZES))
    with torch.no_grad():
        return model(torch.tensor(Z_X, dtype=torch.float64), torch.tensor(Z_H, dtype=torch.float64),
                     torch.tensor(T, dtype=torch.float64), layout)


def _matvec(matrix, vector):
    return [sum(m * v for m, v in zip(row, vector)) for row in matrix]


def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def _read_out(features: list[list[float]], readouts) -> tuple[list[list[float]], list[list[float]]]:
    """eps_h and eps_x by hand from each atom's features (the same on both orientations).

    out = mean over readouts of W f + b; eps_h = out[:6]; the vector 3 · mean_o(out[6] · o) = 1.5 out[6] (1, 1, 0);
    eps_x = the vector minus its molecule's mean.
    """
    eps_h, vectors = [], []
    for f in features:
        outs = [[v + b for v, b in zip(_matvec(weight, f), bias)] for weight, bias in readouts]
        out = [sum(values) / len(outs) for values in zip(*outs)]
        eps_h.append(out[:6])
        vectors.append([1.5 * out[6], 1.5 * out[6], 0.0])
    eps_x, start = [], 0
    for n in SIZES:
        mean = [sum(vectors[i][d] for i in range(start, start + n)) / n for d in range(3)]
        eps_x += [[vectors[i][d] - mean[d] for d in range(3)] for i in range(start, start + n)]
        start += n
    return eps_x, eps_h


def _lifted() -> list[list[float]]:
    """The embedding of [z_h, t] (no bias), per atom."""
    molecule = [b for b, n in enumerate(SIZES) for _ in range(n)]
    return [_matvec(EMBED, Z_H[i] + [T[molecule[i]]]) for i in range(len(Z_H))]


def test_lifting_and_averaged_readouts_by_hand():
    """Two blocks whose update is silenced (last MLP layer zero): out = the mean of the two readouts of the lifted
    embedding, the same on every orientation."""
    model = _model(_config(layers=2, multiple_readouts=True))
    with torch.no_grad():
        for block in model.blocks:
            block.mlp[2].weight.zero_()
            block.mlp[2].bias.zero_()
    eps_x, eps_h = _run(model)
    expected_x, expected_h = _read_out(_lifted(), READOUTS)
    torch.testing.assert_close(eps_h, torch.tensor(expected_h, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_x, torch.tensor(expected_x, dtype=torch.float64), rtol=0, atol=1e-12)


MLP_IN = [[0.5, -0.25], [0.25, 0.5], [-0.5, 0.75], [1.0, 0.0], [0.0, -1.0], [0.75, 0.25], [-0.25, -0.5], [0.5, 0.5]]
MLP_IN_BIAS = [0.1, -0.1, 0.0, 0.2, 0.0, -0.2, 0.3, 0.0]
MLP_OUT = [[0.5, -0.5, 0.25, 0.0, 1.0, 0.0, -0.25, 0.5], [0.0, 0.25, -0.5, 0.5, 0.0, 1.0, 0.5, -0.25]]
MLP_OUT_BIAS = [0.05, -0.05]
NORM_WEIGHT, NORM_BIAS = [1.0, 0.5], [0.1, -0.2]
SPATIAL, SPHERICAL, CONV_BIAS = [0.5, -1.5], [2.0, 0.25], [0.1, -0.3]  # per channel
BETA_SPATIAL, BETA_SPHERICAL = 0.75, -0.5  # the bases' constant pre-activations


def _block_by_hand(f: list[list[float]]) -> list[list[float]]:
    """One ConvNeXt block with constant bases s = GELU(0.75), p = GELU(-0.5), per atom (orientations agree):
    spatial f1_i = κ_c s Σ_{j in the molecule, j = i included} f_j; spherical f2 = (1/O) Σ_o μ_c p f1 + bias;
    then f + Linear(GELU(Linear(LayerNorm(f2))))."""
    s, p = _gelu(BETA_SPATIAL), _gelu(BETA_SPHERICAL)
    out, start = [], 0
    for n in SIZES:
        total = [sum(f[j][c] for j in range(start, start + n)) for c in range(2)]
        for i in range(start, start + n):
            f1 = [SPATIAL[c] * s * total[c] for c in range(2)]
            f2 = [sum(SPHERICAL[c] * p * f1[c] for _ in GRID) / len(GRID) + CONV_BIAS[c] for c in range(2)]
            mean = sum(f2) / 2
            variance = sum((v - mean) ** 2 for v in f2) / 2
            normed = [(v - mean) / math.sqrt(variance + 1e-5) * w + b for v, w, b in zip(f2, NORM_WEIGHT, NORM_BIAS)]
            hidden = [_gelu(v + b) for v, b in zip(_matvec(MLP_IN, normed), MLP_IN_BIAS)]
            update = [v + b for v, b in zip(_matvec(MLP_OUT, hidden), MLP_OUT_BIAS)]
            out.append([f[i][c] + update[c] for c in range(2)])
        start += n
    return out


def test_one_block_with_constant_bases_by_hand():
    """The bases' last layers zero with fixed biases make every kernel constant: the block's spatial sum over the
    molecule (self-loop included), spherical mean, LayerNorm, MLP and residual are then computable by hand."""
    model = _model(_config(layers=1, multiple_readouts=False))
    block = model.blocks[0]
    with torch.no_grad():
        for basis, beta in ((model.spatial_basis, BETA_SPATIAL), (model.spherical_basis, BETA_SPHERICAL)):
            basis.mlp[3].weight.zero_()
            basis.mlp[3].bias.fill_(beta)
        model.spatial_kernels.linear.weight.copy_(_f64(SPATIAL).view(2, 1))
        block.conv.spherical_kernel.weight.copy_(_f64(SPHERICAL).view(2, 1))
        block.conv.bias.copy_(_f64(CONV_BIAS))
        block.norm.weight.copy_(_f64(NORM_WEIGHT))
        block.norm.bias.copy_(_f64(NORM_BIAS))
        block.mlp[0].weight.copy_(_f64(MLP_IN))
        block.mlp[0].bias.copy_(_f64(MLP_IN_BIAS))
        block.mlp[2].weight.copy_(_f64(MLP_OUT))
        block.mlp[2].bias.copy_(_f64(MLP_OUT_BIAS))
    eps_x, eps_h = _run(model)
    expected_x, expected_h = _read_out(_block_by_hand(_lifted()), READOUTS[:1])
    torch.testing.assert_close(eps_h, torch.tensor(expected_h, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_x, torch.tensor(expected_x, dtype=torch.float64), rtol=0, atol=1e-12)
