"""`MoleculeBatch`: the one batch type that data, diffusion, models and metrics exchange."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from molgen.elements import ATOMIC_NUMBERS, ELEMENTS
from molgen.geometry.centroid import remove_centroid

_ATOMIC_NUMBER = torch.tensor(ATOMIC_NUMBERS)
MAX_ATOMS = 29  # the largest QM9 molecule; node-count histograms have MAX_ATOMS + 1 bins

Molecule = tuple[np.ndarray, np.ndarray]
"""One molecule as arrays: positions float64 [N, 3] in Å and atom-type indices int64 [N] (into ELEMENTS)."""


@dataclass(frozen=True)
class MoleculeLayout:
    """Which atoms belong to which molecule: all a denoiser may know besides the noisy state.

    Attributes:
        batch: molecule of each atom, int64 [M].
        ptr: offsets of the molecules' atoms, int64 [B + 1] (atoms of a molecule are contiguous).
    """

    batch: Tensor
    ptr: Tensor

    @property
    def num_molecules(self) -> int:
        """B, the number of molecules."""
        return self.ptr.numel() - 1

    @property
    def num_atoms(self) -> Tensor:
        """Atoms per molecule, int64 [B]."""
        return self.ptr[1:] - self.ptr[:-1]

    @classmethod
    def from_num_atoms(cls, num_atoms: Tensor) -> MoleculeLayout:
        """The layout of molecules with the given atom counts [B]."""
        num_atoms = num_atoms.to(torch.int64)
        ptr = torch.cat([num_atoms.new_zeros(1), num_atoms.cumsum(0)])  # [B + 1]
        batch = torch.repeat_interleave(torch.arange(num_atoms.numel(), device=num_atoms.device), num_atoms)  # [M]
        return cls(batch=batch, ptr=ptr)


@dataclass(frozen=True)
class MoleculeBatch:
    """B molecules with M atoms in all, laid out as torch-geometric does (atoms of a molecule contiguous).

    Attributes:
        x: positions in Angstrom, zero centroid per molecule, [M, 3].
        atom_type: index into `molgen.elements.ELEMENTS` (H, C, N, O, F), int64 [M].
        charge: atomic number, int64 [M].
        batch: molecule of each atom, int64 [M].
        ptr: offsets of the molecules' atoms, int64 [B + 1].
        index: GDB-9 index of each molecule (-1 when not from QM9), int64 [B].
    """

    x: Tensor
    atom_type: Tensor
    charge: Tensor
    batch: Tensor
    ptr: Tensor
    index: Tensor

    @property
    def layout(self) -> MoleculeLayout:
        """The molecule layout (batch, ptr), without the atoms' data."""
        return MoleculeLayout(batch=self.batch, ptr=self.ptr)

    @property
    def num_molecules(self) -> int:
        """B, the number of molecules."""
        return self.layout.num_molecules

    @property
    def num_atoms(self) -> Tensor:
        """Atoms per molecule, int64 [B]."""
        return self.layout.num_atoms

    def __len__(self) -> int:
        return self.num_molecules

    @classmethod
    def from_arrays(
        cls,
        x: Tensor,
        atom_type: Tensor,
        num_atoms: Tensor,
        index: Tensor | None = None,
        center: bool = True,
    ) -> MoleculeBatch:
        """Build a batch from flat atom arrays and the atom count of each molecule.

        Shapes: x [M, 3], atom_type [M], num_atoms [B], index [B] -> MoleculeBatch with M atoms, B molecules.
        """
        num_atoms = num_atoms.to(torch.int64)
        if int(num_atoms.sum()) != x.shape[0] or x.shape[0] != atom_type.shape[0]:
            raise ValueError(f"{x.shape[0]} positions, {atom_type.shape[0]} atom types and {int(num_atoms.sum())} "
                             "atoms in num_atoms must agree")
        atom_type = atom_type.to(torch.int64)
        if atom_type.numel() and (atom_type.min() < 0 or atom_type.max() >= len(ELEMENTS)):
            raise ValueError(f"atom types must lie in [0, {len(ELEMENTS)}) ({', '.join(ELEMENTS)})")
        num_molecules = num_atoms.numel()
        layout = MoleculeLayout.from_num_atoms(num_atoms.to(x.device))
        if center:
            x = remove_centroid(x, layout.batch, num_molecules)  # [M, 3]
        if index is None:
            index = torch.full((num_molecules,), -1, dtype=torch.int64)
        charge = _ATOMIC_NUMBER.to(atom_type.device)[atom_type]  # [M]
        return cls(x=x, atom_type=atom_type, charge=charge, batch=layout.batch, ptr=layout.ptr,
                   index=index.to(torch.int64).to(x.device))

    @classmethod
    def from_molecules(
        cls, molecules: Sequence[tuple[np.ndarray, np.ndarray]], dtype: torch.dtype = torch.float32
    ) -> MoleculeBatch:
        """Build a batch from (positions [N, 3], atom types [N]) pairs, removing each molecule's centroid."""
        if len(molecules) == 0:
            raise ValueError("a MoleculeBatch needs at least one molecule")
        x = torch.cat([torch.as_tensor(np.asarray(p, dtype=np.float64)).reshape(-1, 3) for p, _ in molecules])
        types = torch.cat([torch.as_tensor(np.asarray(t, dtype=np.int64)).reshape(-1) for _, t in molecules])
        num_atoms = torch.tensor([len(t) for _, t in molecules])
        return cls.from_arrays(x.to(dtype), types, num_atoms)

    @classmethod
    def collate(cls, batches: Sequence[MoleculeBatch]) -> MoleculeBatch:
        """Concatenate batches (e.g. the single-molecule items of a data set) into one."""
        num_atoms = torch.cat([b.num_atoms for b in batches])  # [B]
        return cls.from_arrays(
            torch.cat([b.x for b in batches]),
            torch.cat([b.atom_type for b in batches]),
            num_atoms,
            index=torch.cat([b.index for b in batches]),
            center=False,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MoleculeBatch:
        """Move to a device; `dtype` changes the positions' floating type only."""
        return MoleculeBatch(
            x=self.x.to(device=device, dtype=dtype), atom_type=self.atom_type.to(device),
            charge=self.charge.to(device), batch=self.batch.to(device), ptr=self.ptr.to(device),
            index=self.index.to(device),
        )

    def with_positions(self, x: Tensor) -> MoleculeBatch:
        """The same molecules with new positions [M, 3]."""
        return replace(self, x=x)

    def molecules(self) -> list[Molecule]:
        """Per-molecule (positions float64 [N, 3], atom types int64 [N]) pairs, the input of the metrics."""
        x = self.x.detach().cpu().to(torch.float64).numpy()
        types = self.atom_type.detach().cpu().numpy()
        ptr = self.ptr.cpu().tolist()
        return [(x[a:b], types[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]

    def to_pyg(self):
        """A torch_geometric `Batch` with `pos`, `atom_type`, `charge` and `gdb_id` (one per molecule).

        (PyG shifts attributes whose name contains "index" when batching, hence the name `gdb_id`.)
        """
        from torch_geometric.data import Batch, Data

        items = [
            Data(pos=self.x[a:b], atom_type=self.atom_type[a:b], charge=self.charge[a:b],
                 gdb_id=self.index[i : i + 1])
            for i, (a, b) in enumerate(zip(self.ptr[:-1].tolist(), self.ptr[1:].tolist()))
        ]
        return Batch.from_data_list(items)

    @classmethod
    def from_pyg(cls, data) -> MoleculeBatch:
        """Read a torch_geometric `Batch` (or `Data`) with `pos` and `atom_type`; positions are re-centred."""
        num_molecules = int(getattr(data, "num_graphs", 1) or 1)
        batch = data.batch if getattr(data, "batch", None) is not None else data.pos.new_zeros(len(data.pos), dtype=torch.int64)
        num_atoms = torch.bincount(batch, minlength=num_molecules)  # [B]
        index = getattr(data, "gdb_id", None)
        return cls.from_arrays(data.pos, data.atom_type, num_atoms, index=index)


def size_batches(num_atoms: Tensor, batch_size: int) -> list[Tensor]:
    """Indices into num_atoms [B] grouped into batches of at most batch_size molecules of similar size (sorted by
    atom count, stable), so that per-batch padding stays small: int64 tensors."""
    return list(torch.split(torch.argsort(torch.as_tensor(num_atoms), stable=True), batch_size))
