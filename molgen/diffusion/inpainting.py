"""Substructure inpainting with an unconditional EDM model: molecules sampled around a fixed fragment.

Replacement conditioning on EDM's ancestral sampler, with RePaint's resampling (Lugmayr et al. 2022). The first K
atoms of every molecule are the fragment's. The state stays in the zero-centroid subspace of the whole molecule,
while only the fragment's relative geometry is known: after each step to s the fixed atoms are set to
    alpha_s (y - y_bar) + sigma_s (eps_F - eps_F_bar) + c_F,
c_F the centroid the model's step gave them (so the fragment-to-free-atom offset is the model's), and their
features to alpha_s h_F + sigma_s eps_h. `resample` R adds R round trips q(z_t | z_s), p(z_s | z_t) per step.
After EDM's final step the fixed atoms are overwritten exactly and the molecule moved into the fragment's frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion.process import STATE_DIM, Denoiser, batch_to_state, sample_noise
from molgen.choices import SAMPLER_TABLE
from molgen.diffusion.samplers import ancestral_grid, ancestral_step, sample_ancestral
from molgen.diffusion.schedule import NoiseSchedule, alpha, alpha_t_given_s, sigma, sigma2_t_given_s
from molgen.diffusion.steps import EpsModel, EpsModifier, SamplerState, StepHook, StepInfo, chain_hooks, initial_state
from molgen.elements import ATOMIC_NUMBERS
from molgen.geometry.centroid import remove_centroid
from molgen.geometry.rotations import random_rotations


@dataclass(frozen=True)
class Fragment:
    """The fixed atoms: positions y [K, 3] in Å, in the fragment's own frame, and atom-type indices [K]."""

    positions: Tensor
    atom_type: Tensor

    @property
    def num_atoms(self) -> int:
        """K, the number of fixed atoms."""
        return int(self.atom_type.numel())


@dataclass(frozen=True)
class FixedAtoms:
    """The fragment laid out in a batch of B molecules of N_b > K atoms, each copy turned by its own rotation.

    Attributes:
        index: the fixed atoms of each molecule, the first K, int64 [B, K].
        y: the fragment's centred positions, rotated per molecule, [B, K, 3].
        h: the fragment's scaled features [one-hot / 4, Z / 10], [K, 6].
        rotation: R_b with y[b] = (positions - y_bar) R_b^T, [B, 3, 3].
        fragment: the fragment as given.
    """

    index: Tensor
    y: Tensor
    h: Tensor
    rotation: Tensor
    fragment: Fragment


def lay_out_fragment(
    fragment: Fragment, layout: MoleculeLayout, rotation: Tensor, dtype: torch.dtype, device
) -> FixedAtoms:
    """The fragment as the first K atoms of every molecule of `layout`; ValueError unless every N_b > K."""
    k = fragment.num_atoms
    if k < 1 or bool((layout.num_atoms <= k).any()):
        raise ValueError(f"every molecule needs more atoms than the fragment's {k}, got {layout.num_atoms.tolist()}")
    single = MoleculeBatch.from_arrays(fragment.positions.to(device, torch.float64), fragment.atom_type.to(device),
                                       torch.tensor([k], device=device))
    y_centred, h = batch_to_state(single)  # [K, 3] (y - y_bar), [K, 6]
    y = torch.einsum("kj,bij->bki", y_centred, rotation.to(device, torch.float64))  # [B, K, 3]
    index = layout.ptr[:-1].unsqueeze(1) + torch.arange(k, device=layout.ptr.device)  # [B, K]
    return FixedAtoms(index=index, y=y.to(dtype), h=h.to(dtype), rotation=rotation.to(device, dtype),
                      fragment=fragment)


def replace_fixed(
    state: SamplerState, fixed: FixedAtoms, gamma_s: Tensor, generator: torch.Generator | None
) -> SamplerState:
    """Set the fixed atoms to a draw of q(z_s | fragment) around the centroid c_F the model gave them, re-centred."""
    alpha_s, sigma_s = float(alpha(gamma_s)), float(sigma(gamma_s))
    num_molecules, k = fixed.index.shape
    z_x, z_h = state.z_x.clone(), state.z_h.clone()  # [M, 3], [M, 6]
    eps = torch.randn(num_molecules, k, STATE_DIM, dtype=z_x.dtype, device=z_x.device,
                      generator=generator)  # [B, K, 9]
    eps_x = eps[..., :3] - eps[..., :3].mean(dim=1, keepdim=True)  # [B, K, 3] eps_F - eps_F_bar
    c_F = z_x[fixed.index].mean(dim=1, keepdim=True)  # [B, 1, 3]
    z_x[fixed.index] = alpha_s * fixed.y + sigma_s * eps_x + c_F  # [B, K, 3]
    z_h[fixed.index] = alpha_s * fixed.h + sigma_s * eps[..., 3:]  # [B, K, 6]
    z_x = remove_centroid(z_x, state.layout.batch, num_molecules)  # [M, 3]
    return SamplerState(z_x, z_h, state.layout)


def renoise(state: SamplerState, gamma_t: Tensor, gamma_s: Tensor, generator: torch.Generator | None) -> SamplerState:
    """A draw of q(z_t | z_s) = N(alpha_{t|s} z_s, sigma^2_{t|s} I), positions on the zero-centroid subspace."""
    alpha_ts = float(alpha_t_given_s(gamma_t, gamma_s))
    sigma_ts = math.sqrt(float(sigma2_t_given_s(gamma_t, gamma_s)))
    eps_x, eps_h = sample_noise(state.layout, state.z_x.dtype, state.z_x.device, generator)  # [M, 3], [M, 6]
    return SamplerState(alpha_ts * state.z_x + sigma_ts * eps_x, alpha_ts * state.z_h + sigma_ts * eps_h, state.layout)


def to_fragment_frame(batch: MoleculeBatch, fixed: FixedAtoms) -> MoleculeBatch:
    """Overwrite the fixed atoms exactly and move each molecule into the fragment's frame (rotated back).

    x' = (x - c_F) R_b + y_bar, c_F the fixed atoms' centroid; then x'[F] = y and the fragment's types.
    """
    fragment = fixed.fragment
    positions = fragment.positions.to(batch.x.device, batch.x.dtype)  # [K, 3]
    c_F = batch.x[fixed.index].mean(dim=1)  # [B, 3]
    x = torch.einsum("mi,mij->mj", batch.x - c_F[batch.batch], fixed.rotation.to(batch.x.dtype)[batch.batch])  # [M, 3]
    x = x + positions.mean(dim=0)  # [M, 3]
    x[fixed.index] = positions  # [B, K, 3]
    atom_type, charge = batch.atom_type.clone(), batch.charge.clone()  # [M], [M]
    fragment_type = fragment.atom_type.to(atom_type.device)  # [K]
    atom_type[fixed.index] = fragment_type
    charge[fixed.index] = torch.tensor(ATOMIC_NUMBERS, device=charge.device)[fragment_type]
    return replace(batch, x=x, atom_type=atom_type, charge=charge)


def repaint_hook(
    model: EpsModel,
    fixed: FixedAtoms,
    resample: int,
    generator: torch.Generator | None,
    on_round_trip: Callable[[], None] | None = None,
    modifiers: Sequence[EpsModifier] = (),
) -> StepHook:
    """The step hook of inpainting: after EDM's step t -> s, put the fixed atoms back (`replace_fixed`), then R =
    `resample` RePaint round trips: q(z_t | z_s), EDM's step again, the fixed atoms again (then `on_round_trip()`)."""

    schedule = model.schedule

    def after_step(info: StepInfo) -> SamplerState:
        gamma_t, gamma_s = (schedule.gamma(torch.tensor(t, dtype=torch.float64, device=schedule.gamma_table.device))
                            .cpu() for t in (info.t_from, info.t))
        state = replace_fixed(info.state, fixed, gamma_s, generator)
        for trip in range(1, resample + 1):
            state = renoise(state, gamma_t, gamma_s, generator)
            where = f"step {info.step} of {info.num_steps} (t = {info.t_from:.4g}, round trip {trip})"
            z_x, z_h = ancestral_step(model, state, info.t_from, gamma_t, gamma_s, generator, where, modifiers)
            state = replace_fixed(SamplerState(z_x, z_h, state.layout), fixed, gamma_s, generator)
            if on_round_trip is not None:
                on_round_trip()
        return state

    return after_step


def sample_inpainting(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    fragment: Fragment,
    num_atoms: Tensor,
    *,
    steps: int | None = None,
    resample: int = 0,
    rotate: bool = False,
    generator: torch.Generator | None = None,
    callback: StepHook | None = None,
    on_round_trip: Callable[[], None] | None = None,
    modifiers: Sequence[EpsModifier] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> MoleculeBatch:
    """Molecules of num_atoms [B] atoms (each > K) whose first K atoms are the fragment, in the fragment's frame.

    EDM's ancestral sampler on `ancestral_grid(T, steps)` (default: its table's steps) with `repaint_hook` after
    every step (the fixed atoms replaced, R = `resample` RePaint round trips): (R + 1) * steps + 1 network
    evaluations, each prediction changed by the ε-modifiers in order; `callback` runs after it. rotate=True turns
    the fragment by a random rotation per molecule (for a denoiser that is only approximately equivariant) and turns
    the result back. Every random draw uses `generator`: the same seed, the same molecules.
    """
    if resample < 0:
        raise ValueError(f"resample must be >= 0, got {resample}")
    device = torch.device(device) if device is not None else schedule.gamma_table.device
    layout = MoleculeLayout.from_num_atoms(torch.as_tensor(num_atoms, dtype=torch.int64).to(device))
    eye = torch.eye(3, dtype=torch.float64, device=device).expand(layout.num_molecules, 3, 3)  # [B, 3, 3]
    rotation = random_rotations(layout.num_molecules, generator, torch.float64, device) if rotate else eye
    fixed = lay_out_fragment(fragment, layout, rotation, dtype, device)
    steps = SAMPLER_TABLE["ancestral"].default_steps if steps is None else steps
    grid = ancestral_grid(schedule.timesteps, steps)  # [S + 1]
    gamma_T = schedule.gamma_at(grid[:1].to(schedule.gamma_table.device)).cpu()[0]  # [] float64
    start = replace_fixed(initial_state(layout, generator, dtype, device), fixed, gamma_T, generator)
    model = EpsModel(denoiser, schedule)
    hook = chain_hooks(repaint_hook(model, fixed, resample, generator, on_round_trip, modifiers), callback)
    return to_fragment_frame(sample_ancestral(model, start, grid, generator, hook, modifiers), fixed)
