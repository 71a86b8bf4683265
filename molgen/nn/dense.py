"""Dense padded blocks for fully connected molecular graphs: [M, ...] atoms <-> [B, N, ...] molecules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from molgen.batch import MoleculeLayout


@dataclass(frozen=True)
class DenseLayout:
    """Where each atom sits in a [B, N] block padded to the largest molecule N.

    Attributes:
        slot: flat index b * N + n of each atom, int64 [M].
        mask: which slots hold an atom, bool [B, N].
    """

    slot: Tensor
    mask: Tensor

    @property
    def num_molecules(self) -> int:
        """B."""
        return self.mask.shape[0]

    @property
    def max_atoms(self) -> int:
        """N, the padded size."""
        return self.mask.shape[1]

    @property
    def pair_mask(self) -> Tensor:
        """Pairs of distinct real atoms of the same molecule, bool [B, N, N] (no self-loops)."""
        eye = torch.eye(self.max_atoms, dtype=torch.bool, device=self.mask.device)  # [N, N]
        return self.mask.unsqueeze(2) & self.mask.unsqueeze(1) & ~eye  # [B, N, N]


def dense_layout(layout: MoleculeLayout) -> DenseLayout:
    """The padded layout of a batch of molecules (atoms of a molecule contiguous, in order)."""
    num_atoms = layout.num_atoms  # [B]
    max_atoms = int(num_atoms.max()) if num_atoms.numel() else 0
    position = torch.arange(layout.batch.numel(), device=num_atoms.device) - layout.ptr[layout.batch]  # [M]
    slot = layout.batch * max_atoms + position  # [M]
    mask = torch.arange(max_atoms, device=num_atoms.device) < num_atoms.unsqueeze(1)  # [B, N]
    return DenseLayout(slot=slot, mask=mask)


def to_dense(values: Tensor, dense: DenseLayout) -> Tensor:
    """Scatter atom values into padded molecule blocks (zeros in the padding).

    Shapes: values [M, *F] -> [B, N, *F].
    """
    out = values.new_zeros(dense.num_molecules * dense.max_atoms, *values.shape[1:])  # [B*N, *F]
    out = out.index_copy(0, dense.slot, values)  # [B*N, *F]
    return out.view(dense.num_molecules, dense.max_atoms, *values.shape[1:])  # [B, N, *F]


def from_dense(values: Tensor, dense: DenseLayout) -> Tensor:
    """Gather the real atoms back out of padded blocks.

    Shapes: values [B, N, *F] -> [M, *F].
    """
    return values.reshape(dense.num_molecules * dense.max_atoms, *values.shape[2:])[dense.slot]  # [M, *F]


def size_groups(num_atoms: Tensor, group_cost: float = 2000.0) -> list[Tensor]:
    """Split a batch of molecules into groups of similar size, each to be padded to its own largest molecule.

    A batch that mixes sizes (as sampling draws them) pads every molecule to the largest: the pair work of a
    molecule grows as N², so a molecule of 9 atoms in a block of 29 costs ten times its own. The split minimises
    Σ_groups (group_cost + Σ_molecules N_max² + 30·N_max), a cost model of the padded pair and atom work plus a
    fixed cost per network call, by dynamic programming over the molecules sorted by size. A batch of equal sizes
    (training's buckets) stays one group.

    Shapes: num_atoms [B] -> list of molecule indices [B_g], sorted by size, covering every molecule once.
    """
    order = torch.argsort(num_atoms.cpu(), stable=True)  # [B]
    sizes = num_atoms.cpu()[order].tolist()
    best = [0.0] + [math.inf] * len(sizes)  # best[k]: cost of the first k sorted molecules
    cut = [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        largest = sizes[end - 1]
        per_molecule = largest * largest + 30 * largest
        for start in range(end):
            cost = best[start] + group_cost + (end - start) * per_molecule
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(sizes)
    while end > 0:
        groups.append(order[cut[end]:end].to(num_atoms.device))
        end = cut[end]
    return groups[::-1]


@dataclass(frozen=True)
class SizeGroup:
    """One size group of a batch: its molecules, their atoms, and the group's own layouts.

    Attributes:
        molecules: indices into the batch's molecules, int64 [B_g] (None: the whole batch, in order).
        atoms: indices into the batch's atoms, molecule by molecule, int64 [M_g] (None: all, in order).
        layout: the group's molecules alone.
        dense: the group's block padded to its largest molecule.
    """

    molecules: Tensor | None
    atoms: Tensor | None
    layout: MoleculeLayout
    dense: DenseLayout


@dataclass(frozen=True)
class GroupedLayout(MoleculeLayout):
    """A layout with its size groups worked out (`grouped_layout`): a dense denoiser's per-layout set-up, made once
    and reused by every call on the same molecules (a sampling run keeps one layout for all its steps).

    Attributes:
        groups: the size groups, from small to large molecules.
        inverse: where each atom's output lands in the groups' outputs concatenated, int64 [M] (None: one group).
    """

    groups: tuple[SizeGroup, ...] = ()
    inverse: Tensor | None = None


def grouped_layout(layout: MoleculeLayout) -> GroupedLayout:
    """`layout` split by `size_groups`, with each group's atoms, layout and padded block (a GroupedLayout is
    returned as it is)."""
    if isinstance(layout, GroupedLayout):
        return layout
    groups = size_groups(layout.num_atoms)
    if len(groups) == 1:
        whole = SizeGroup(None, None, layout, dense_layout(layout))
        return GroupedLayout(batch=layout.batch, ptr=layout.ptr, groups=(whole,))
    parts = []
    for molecules in groups:
        part = MoleculeLayout.from_num_atoms(layout.num_atoms[molecules])
        parts.append(SizeGroup(molecules, molecule_atoms(layout, molecules), part, dense_layout(part)))
    inverse = torch.argsort(torch.cat([part.atoms for part in parts]))  # [M]
    return GroupedLayout(batch=layout.batch, ptr=layout.ptr, groups=tuple(parts), inverse=inverse)


def molecule_atoms(layout: MoleculeLayout, molecules: Tensor) -> Tensor:
    """The atom indices of the given molecules, molecule by molecule. Shapes: molecules [B_g] -> [M_g]."""
    counts = layout.num_atoms[molecules]  # [B_g]
    starts = torch.repeat_interleave(layout.ptr[molecules], counts)  # [M_g]
    offsets = torch.repeat_interleave(counts.cumsum(0) - counts, counts)  # [M_g]
    return starts + torch.arange(starts.numel(), device=starts.device) - offsets  # [M_g]
