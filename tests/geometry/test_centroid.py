"""Per-molecule centroids: known means, and `remove_centroid` as a projection onto the zero-centroid subspace."""

from __future__ import annotations

import torch

from molgen.geometry.centroid import centroid, remove_centroid


def _random_batch(num_atoms=(3, 1, 7, 4), seed=0):
    """Random float64 positions [M, 3] and the molecule of each atom [M]."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(num_atoms)), torch.tensor(num_atoms))  # [M]
    x = 5.0 * torch.randn(len(batch), 3, generator=generator, dtype=torch.float64)  # [M, 3]
    return x, batch


def test_centroid_is_the_unweighted_mean_of_each_molecule():
    """Hand-made molecules: the centroid is the plain mean of the positions (EDM's "centre of mass" weighs every
    atom equally), each molecule on its own."""
    x = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 3.0, 0.0],  # molecule 0
                      [5.0, 5.0, 5.0],  # molecule 1, one atom
                      [-1.0, 2.0, 4.0], [1.0, -2.0, 0.0]], dtype=torch.float64)  # molecule 2
    batch = torch.tensor([0, 0, 0, 1, 2, 2])
    expected = torch.tensor([[1.0, 1.0, 0.0], [5.0, 5.0, 5.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    assert torch.equal(centroid(x, batch, 3), expected)


def test_centroid_of_a_molecule_without_atoms_is_zero_not_nan():
    """A molecule index with no atoms (count 0) gets centroid 0: the count is clamped, no 0/0."""
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    result = centroid(x, torch.tensor([1]), 2)  # [2, 3]: molecule 0 is empty
    assert torch.equal(result, torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64))


def test_remove_centroid_leaves_zero_mean_per_molecule_in_float64():
    """After removal every molecule's mean position is zero to float64 rounding, and the dtype is kept."""
    x, batch = _random_batch()
    centred = remove_centroid(x, batch, 4)  # [M, 3]
    assert centred.dtype == torch.float64
    assert centroid(centred, batch, 4).abs().max().item() < 1e-14


def test_remove_centroid_is_idempotent():
    """A projection: removing the centroid twice equals removing it once."""
    x, batch = _random_batch(seed=1)
    once = remove_centroid(x, batch, 4)  # [M, 3]
    torch.testing.assert_close(remove_centroid(once, batch, 4), once, rtol=0, atol=1e-14)


def test_remove_centroid_forgets_a_translation_of_each_molecule():
    """Shifting each molecule by its own vector changes nothing after removal, and only differences of positions
    within a molecule survive (the result equals x - mean computed by hand)."""
    x, batch = _random_batch(seed=2)
    shift = torch.tensor([[1.0, -2.0, 3.0], [10.0, 0.0, 0.0], [0.0, 0.5, -7.0], [4.0, 4.0, 4.0]], dtype=torch.float64)
    centred = remove_centroid(x, batch, 4)  # [M, 3]
    torch.testing.assert_close(remove_centroid(x + shift[batch], batch, 4), centred, rtol=0, atol=1e-13)
    for molecule in range(4):
        atoms = x[batch == molecule]  # [N_b, 3]
        torch.testing.assert_close(centred[batch == molecule], atoms - atoms.mean(0), rtol=0, atol=1e-13)
