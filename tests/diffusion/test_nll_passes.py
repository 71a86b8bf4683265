"""The NLL over several passes is the mean of the one-pass estimates drawn from the same generator stream."""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.checkpoint import LoadedModel
from molgen.diffusion import NodeCountDistribution, PolynomialSchedule, evaluate_nll, variational_nll
from molgen.diffusion.likelihood import nll_per_molecule

from .standins import EquivariantDenoiser

SIZES = [3, 4, 4, 5, 6]  # sorted, so batching by size keeps this order
HISTOGRAM = NodeCountDistribution.from_num_atoms(torch.tensor(SIZES))


def _molecules(sizes: list[int], seed: int) -> MoleculeBatch:
    generator = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    x = torch.randn(total, 3, generator=generator, dtype=torch.float64)  # [M, 3]
    types = torch.randint(0, 5, (total,), generator=generator)  # [M]
    return MoleculeBatch.from_arrays(x, types, torch.tensor(sizes))


def _one_pass_estimates(denoiser, schedule, batches, passes: int, seed: int) -> list[list[torch.Tensor]]:
    """For each batch, `passes` one-pass estimates [B] drawn back to back from one generator stream."""
    generator = torch.Generator().manual_seed(seed)
    return [[variational_nll(denoiser, schedule, b, HISTOGRAM, generator).total for _ in range(passes)]
            for b in batches]


@pytest.mark.parametrize("passes", [2, 3])
def test_passes_give_the_mean_of_the_one_pass_estimates(passes):
    """Per molecule exactly (a + b) / 2 (or (a + b + c) / 3), not the sum, not one pass; the passes differ."""
    schedule, denoiser = PolynomialSchedule(100), EquivariantDenoiser().eval()
    batches = [_molecules(SIZES[:2], seed=1), _molecules(SIZES[2:], seed=2)]
    estimates = _one_pass_estimates(denoiser, schedule, batches, passes, seed=5)
    expected = torch.cat([sum(pair) / passes for pair in estimates])  # [5]
    got = nll_per_molecule(denoiser, schedule, batches, HISTOGRAM, passes, 5, False, None)  # [5]
    assert torch.equal(got, expected)
    first, second = estimates[0][0], estimates[0][1]
    assert float((first - second).abs().min()) > 1e-3  # fresh t and noise in every pass
    result = evaluate_nll(denoiser, schedule, batches, HISTOGRAM, passes=passes, generator=5, progress=False)
    assert result.mean == pytest.approx(float(expected.mean()), rel=1e-13)
    assert result.standard_error == pytest.approx(float(expected.std() / len(SIZES) ** 0.5), rel=1e-12)


class _TestSplit:
    """Stands in for the QM9 test split: five molecules, sorted by size."""

    def __init__(self, split: str, cache_dir=None) -> None:
        assert split == "test"
        self.molecules = _molecules(SIZES, seed=3)
        self.num_atoms = self.molecules.num_atoms

    def __len__(self) -> int:
        return len(SIZES)

    def batch(self, indices) -> MoleculeBatch:
        ptr = self.molecules.ptr.tolist()
        atoms = torch.cat([torch.arange(ptr[i], ptr[i + 1]) for i in indices.tolist()])
        return MoleculeBatch.from_arrays(self.molecules.x[atoms], self.molecules.atom_type[atoms],
                                         self.num_atoms[indices])


def test_test_split_nll_forwards_the_passes(monkeypatch):
    """`molgen sample --nll-passes` goes through test_split_nll: it must average its passes, not run one."""
    import molgen.data.qm9
    from molgen.evaluation import test_split_nll

    monkeypatch.setattr(molgen.data.qm9, "QM9Dataset", _TestSplit)
    schedule, denoiser = PolynomialSchedule(100), EquivariantDenoiser().eval()
    loaded = LoadedModel(model=denoiser, config=None, schedule=schedule, node_distribution=HISTOGRAM)
    whole = [_TestSplit("test").molecules]
    for passes in (1, 2):
        estimates = _one_pass_estimates(denoiser, schedule, whole, passes, seed=4)
        expected = sum(estimates[0]) / passes  # [5]
        result = test_split_nll(loaded, passes=passes, batch_size=100, seed=4, progress=False)
        assert result.num_molecules == 5
        assert result.mean == pytest.approx(float(expected.mean()), rel=1e-13)
