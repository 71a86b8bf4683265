"""Dense padded molecule blocks: the layout of a known batch, the [M] <-> [B, N] round trip with padding, and the
size grouping (its dynamic programme against a brute-force optimum over all partitions)."""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeLayout
from molgen.nn.dense import dense_layout, from_dense, grouped_layout, molecule_atoms, size_groups, to_dense

MIXED = (5, 29, 3, 12, 18, 18, 7, 25, 4, 9, 22)  # several size groups at the default cost


def _layout(num_atoms) -> MoleculeLayout:
    return MoleculeLayout.from_num_atoms(torch.tensor(num_atoms))


def test_dense_layout_of_a_known_batch():
    """Molecules of 2, 3 and 1 atoms pad to N = 3: slots b·N + n, the mask of real slots, and pairs of distinct real
    atoms of one molecule (2 + 6 + 0 = 8 ordered pairs, no self-loops)."""
    dense = dense_layout(_layout([2, 3, 1]))
    assert (dense.num_molecules, dense.max_atoms) == (3, 3)
    assert dense.slot.tolist() == [0, 1, 3, 4, 5, 6]
    assert dense.mask.tolist() == [[True, True, False], [True, True, True], [True, False, False]]
    pair_mask = dense.pair_mask  # [3, 3, 3]
    assert pair_mask[0].tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert pair_mask[1].tolist() == [[False, True, True], [True, False, True], [True, True, False]]
    assert not pair_mask[2].any()
    assert int(pair_mask.sum()) == 8


def test_to_dense_puts_atoms_in_their_slots_and_zeros_in_the_padding():
    """Atom values land at [molecule, position in molecule]; padded slots are exactly zero (trailing dims kept)."""
    layout = _layout([2, 3, 1])
    values = torch.arange(1.0, 7.0, dtype=torch.float64).view(6, 1, 1).expand(6, 2, 3)  # [M, 2, 3]
    dense = to_dense(values, dense_layout(layout))  # [B, N, 2, 3]
    assert dense.shape == (3, 3, 2, 3) and dense.dtype == torch.float64
    assert dense[..., 0, 0].tolist() == [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0], [6.0, 0.0, 0.0]]


@pytest.mark.parametrize("num_atoms", [(4, 4, 4), (5, 29, 3, 12), (1,)], ids=["no-padding", "padding", "single"])
def test_from_dense_inverts_to_dense(num_atoms):
    """from_dense(to_dense(v)) == v bit for bit; to_dense(from_dense(d)) is d with the padding zeroed."""
    generator = torch.Generator().manual_seed(0)
    layout = _layout(num_atoms)
    dense = dense_layout(layout)
    values = torch.randn(sum(num_atoms), 7, generator=generator, dtype=torch.float64)  # [M, 7]
    assert torch.equal(from_dense(to_dense(values, dense), dense), values)
    blocks = torch.randn(dense.num_molecules, dense.max_atoms, 7, generator=generator, dtype=torch.float64)  # [B, N, 7]
    assert torch.equal(to_dense(from_dense(blocks, dense), dense), blocks * dense.mask.unsqueeze(-1))


def _cost(groups: list[list[int]], sizes: list[int], group_cost: float) -> float:
    """The documented cost: Σ_groups (group_cost + Σ_molecules N_max² + 30·N_max)."""
    total = 0.0
    for group in groups:
        largest = max(sizes[m] for m in group)
        total += group_cost + len(group) * (largest * largest + 30 * largest)
    return total


def _partitions(items: list[int]):
    """Every partition of `items` into non-empty groups (Bell(n) of them)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for k in range(len(partition)):
            yield partition[:k] + [[first, *partition[k]]] + partition[k + 1:]


@pytest.mark.parametrize("group_cost", [0.0, 300.0, 2000.0, 1e5])
def test_size_groups_reach_the_brute_force_optimum(group_cost):
    """On random batches of up to 7 molecules (sizes 1-29) the grouping's cost equals the minimum over all set
    partitions, found by enumeration: the sorted dynamic programme loses nothing."""
    generator = torch.Generator().manual_seed(int(group_cost))
    for trial in range(12):
        count = 2 + trial % 6
        num_atoms = torch.randint(1, 30, (count,), generator=generator)  # [B]
        sizes = num_atoms.tolist()
        groups = [g.tolist() for g in size_groups(num_atoms, group_cost)]
        best = min(_cost(p, sizes, group_cost) for p in _partitions(list(range(count))))
        assert _cost(groups, sizes, group_cost) == best, (sizes, groups)


def test_size_groups_cover_each_molecule_once_sorted_by_size():
    """The groups partition the batch, run from small to large molecules, and the small molecules of a mixed batch
    are not padded to its largest (29)."""
    counts = torch.tensor(MIXED)
    groups = size_groups(counts)
    assert 1 < len(groups) < len(MIXED)
    assert sorted(torch.cat(groups).tolist()) == list(range(len(MIXED)))
    ordered = counts[torch.cat(groups)].tolist()
    assert ordered == sorted(ordered)
    assert all(g.dtype == torch.int64 for g in groups)
    assert max(int(counts[g].max()) for g in groups[:-1]) < int(counts.max())


def test_size_groups_extremes_of_the_group_cost():
    """A batch of equal sizes (a training bucket) stays one group; without a cost per group no two sizes share a
    group; with a huge one everything is one group."""
    assert [len(g) for g in size_groups(torch.tensor([18] * 64))] == [64]
    counts = torch.tensor(MIXED)
    assert all(counts[g].unique().numel() == 1 for g in size_groups(counts, group_cost=0.0))
    assert [len(g) for g in size_groups(counts, group_cost=1e9)] == [len(MIXED)]


def test_molecule_atoms_lists_atoms_molecule_by_molecule():
    """In MIXED, molecule 3 holds atoms 37-48 and molecule 0 atoms 0-4, returned in the order asked."""
    atoms = molecule_atoms(_layout(MIXED), torch.tensor([3, 0]))
    assert atoms.tolist() == list(range(37, 49)) + list(range(0, 5))


def test_grouped_layout_holds_each_groups_atoms_layout_and_inverse():
    """MIXED splits as `size_groups` does; each group's atoms are its molecules' atoms, its layout their counts, and
    `inverse` puts the groups' concatenated atoms back in batch order. One equal-size batch is one group, in order."""
    layout = _layout(MIXED)
    grouped = grouped_layout(layout)
    assert [g.molecules.tolist() for g in grouped.groups] == [g.tolist() for g in size_groups(layout.num_atoms)]
    for group in grouped.groups:
        assert group.atoms.tolist() == molecule_atoms(layout, group.molecules).tolist()
        assert group.layout.num_atoms.tolist() == [MIXED[m] for m in group.molecules.tolist()]
        assert group.dense.max_atoms == max(MIXED[m] for m in group.molecules.tolist())
    concatenated = torch.cat([g.atoms for g in grouped.groups])  # [M]
    assert concatenated[grouped.inverse].tolist() == list(range(sum(MIXED)))
    assert torch.equal(grouped.batch, layout.batch) and torch.equal(grouped.ptr, layout.ptr)
    assert grouped_layout(grouped) is grouped
    single = grouped_layout(_layout([6, 6, 6]))
    assert single.inverse is None and len(single.groups) == 1 and single.groups[0].atoms is None
