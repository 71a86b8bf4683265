"""MoleculeBatch: construction, centring, collation, layout and the torch-geometric round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molgen.batch import MoleculeBatch, MoleculeLayout


def _molecules(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, 3)) + 5.0, rng.integers(0, 5, size=n)) for n in (3, 7, 1, 4)]


def test_from_molecules_centres_and_lays_out():
    batch = MoleculeBatch.from_molecules(_molecules(), dtype=torch.float64)
    assert batch.num_molecules == 4 and batch.num_atoms.tolist() == [3, 7, 1, 4]
    assert batch.ptr.tolist() == [0, 3, 10, 11, 15]
    assert batch.batch.tolist() == [0] * 3 + [1] * 7 + [2] + [3] * 4
    sums = torch.zeros(4, 3, dtype=torch.float64).index_add_(0, batch.batch, batch.x)
    assert sums.abs().max() < 1e-12
    assert torch.equal(batch.charge, torch.tensor([1, 6, 7, 8, 9])[batch.atom_type])
    assert batch.index.tolist() == [-1] * 4
    for (pos, types), (mol_pos, mol_types) in zip(_molecules(), batch.molecules()):
        np.testing.assert_allclose(mol_pos, pos - pos.mean(axis=0), atol=1e-12)
        assert mol_types.tolist() == types.tolist()


def test_collate_equals_building_at_once():
    molecules = _molecules()
    whole = MoleculeBatch.from_molecules(molecules)
    parts = MoleculeBatch.collate([MoleculeBatch.from_molecules(molecules[:2]), MoleculeBatch.from_molecules(molecules[2:])])
    for name in ("x", "atom_type", "charge", "batch", "ptr", "index"):
        assert torch.equal(getattr(whole, name), getattr(parts, name)), name


def test_layout_matches_batch():
    batch = MoleculeBatch.from_molecules(_molecules())
    layout = MoleculeLayout.from_num_atoms(batch.num_atoms)
    assert torch.equal(layout.batch, batch.layout.batch) and torch.equal(layout.ptr, batch.layout.ptr)
    assert layout.num_molecules == 4 and layout.num_atoms.tolist() == [3, 7, 1, 4]


def test_pyg_round_trip():
    batch = MoleculeBatch.from_molecules(_molecules())
    pyg = batch.to_pyg()
    assert pyg.num_graphs == 4 and torch.equal(pyg.pos, batch.x)
    back = MoleculeBatch.from_pyg(pyg)
    for name in ("atom_type", "batch", "ptr", "index"):
        assert torch.equal(getattr(back, name), getattr(batch, name)), name
    torch.testing.assert_close(back.x, batch.x)


def test_bad_arrays_raise_clear_errors():
    with pytest.raises(ValueError, match="atom types must lie in"):
        MoleculeBatch.from_molecules([(np.zeros((2, 3)), np.array([0, 5]))])
    with pytest.raises(ValueError, match="must agree"):
        MoleculeBatch.from_arrays(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), torch.tensor([2]))
    with pytest.raises(ValueError, match="at least one molecule"):
        MoleculeBatch.from_molecules([])


def test_size_buckets_cover_the_epoch_with_similar_sizes():
    from molgen.data.sampler import SizeBucketBatchSampler

    num_atoms = torch.randint(3, 30, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = SizeBucketBatchSampler(num_atoms, batch_size=64, seed=1)
    batches = sampler.epoch(0)
    assert len(batches) == len(sampler) == 15 and all(len(b) == 64 for b in batches)
    used = torch.cat(batches)
    assert len(used.unique()) == 960
    spread = max(int(num_atoms[b].max() - num_atoms[b].min()) for b in batches)
    assert spread <= 3
    assert all(torch.equal(a, b) for a, b in zip(batches, sampler.epoch(0)))
    assert not all(torch.equal(a, b) for a, b in zip(batches, sampler.epoch(1)))
