"""Inpainting around a fixed fragment with exact denoisers: one point cloud, and a two-cloud mixture."""

from __future__ import annotations

import pytest
import torch

from molgen.batch import MoleculeBatch, MoleculeLayout
from molgen.diffusion import PolynomialSchedule, initial_state
from molgen.diffusion.inpainting import (
    Fragment,
    lay_out_fragment,
    replace_fixed,
    sample_inpainting,
)
from molgen.geometry.centroid import centroid

from .standins import EquivariantDenoiser, MixtureDenoiser

NUM_ATOMS, FIXED = 6, 3
TYPES = torch.tensor([1, 1, 0, 3, 0, 0, 1, 1, 0, 2, 0, 4])  # C C H O H H | C C H N H F: the fixed C C H in both
WEIGHTS = torch.tensor([0.3, 0.7])
OFFSET = torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)  # the fragment's frame is not the cloud's


@pytest.fixture(scope="module")
def schedule() -> PolynomialSchedule:
    return PolynomialSchedule(1000)


def _clouds(fixed_shift: float) -> MoleculeBatch:
    """Two 6-atom clouds; the second's first 3 atoms are the first's moved by `fixed_shift` Å per axis (random)."""
    generator = torch.Generator().manual_seed(1)
    x = 1.2 * torch.randn(2 * NUM_ATOMS, 3, generator=generator, dtype=torch.float64)  # [2 N, 3]
    shift = fixed_shift * torch.randn(FIXED, 3, generator=generator, dtype=torch.float64)  # [K, 3]
    x[NUM_ATOMS:NUM_ATOMS + FIXED] = x[:FIXED] + shift
    return MoleculeBatch.from_arrays(x, TYPES, torch.tensor([NUM_ATOMS, NUM_ATOMS]))


def _inpaint(denoiser, schedule, fragment: Fragment, num: int, seed: int = 0, **options) -> MoleculeBatch:
    counts = torch.full((num,), NUM_ATOMS)  # [B]
    return sample_inpainting(denoiser, schedule, fragment, counts, steps=options.pop("steps", 100),
                             generator=torch.Generator().manual_seed(seed), dtype=torch.float64, **options)


def test_one_cloud_is_reproduced_in_the_fragment_frame(schedule):
    """(a) Every sample is the whole cloud, in the fragment's frame, within 0.05 Å and without alignment."""
    cloud = MoleculeBatch.from_arrays(_clouds(0.0).x[:NUM_ATOMS], TYPES[:NUM_ATOMS], torch.tensor([NUM_ATOMS]))
    denoiser = MixtureDenoiser(schedule, cloud, torch.ones(1))
    fragment = Fragment(cloud.x[:FIXED] + OFFSET, TYPES[:FIXED])
    samples = _inpaint(denoiser, schedule, fragment, 100)
    error = (samples.x.reshape(-1, NUM_ATOMS, 3) - (cloud.x + OFFSET)).norm(dim=-1)  # [B, N]
    assert float(error.max()) < 0.05
    assert torch.equal(samples.atom_type.reshape(-1, NUM_ATOMS), TYPES[:NUM_ATOMS].expand(100, -1))


def test_resampling_completes_to_the_matching_cloud_more_often(schedule):
    """(b) The share completing to the cloud whose fixed atoms match is above its prior 0.3, higher at R = 3."""
    clouds = _clouds(0.8)
    denoiser = MixtureDenoiser(schedule, clouds, WEIGHTS)
    fragment = Fragment(clouds.x[:FIXED], TYPES[:FIXED])
    share = {}
    for resample in (0, 3):
        samples = _inpaint(denoiser, schedule, fragment, 200, resample=resample)
        types = samples.atom_type.reshape(-1, NUM_ATOMS)  # [B, N]
        share[resample] = float((types == TYPES[:NUM_ATOMS]).all(dim=1).double().mean())
    assert 0.4 < share[0] < share[3] - 0.1 and share[3] < 0.95, share  # measured: 0.60 and 0.80 on 400 samples


def test_fixed_atoms_exact_and_first_in_every_molecule(schedule):
    """Random rotations, any denoiser, float32: the first K atoms are the fragment's, positions to 1e-4 Å."""
    positions = torch.tensor([[10.0, 0.0, 0.0], [11.2, 0.3, 0.0], [10.1, 1.4, -0.2]])  # [K, 3], far from the origin
    fragment = Fragment(positions, torch.tensor([1, 3, 2]))
    denoiser = EquivariantDenoiser().float()
    counts = torch.tensor([4, 7, 5])  # [B]
    samples = sample_inpainting(denoiser, schedule, fragment, counts, steps=10, resample=1, rotate=True,
                                generator=torch.Generator().manual_seed(0))
    for start in samples.ptr[:-1].tolist():
        torch.testing.assert_close(samples.x[start:start + 3], fragment.positions, atol=1e-4, rtol=0)
        assert samples.atom_type[start:start + 3].tolist() == [1, 3, 2]
        assert samples.charge[start:start + 3].tolist() == [6, 8, 7]
    assert torch.equal(samples.num_atoms, counts)


def test_same_seed_same_molecules(schedule):
    denoiser = EquivariantDenoiser()
    fragment = Fragment(torch.randn(2, 3, dtype=torch.float64), torch.tensor([1, 1]))
    first, again, other = (_inpaint(denoiser, schedule, fragment, 3, seed=seed, steps=5, resample=1, rotate=True)
                           for seed in (7, 7, 8))
    assert torch.equal(first.x, again.x) and torch.equal(first.atom_type, again.atom_type)
    assert not torch.equal(first.x, other.x)


def test_replacement_keeps_the_model_centroid_of_the_fixed_atoms(schedule):
    """The fixed atoms keep the centroid c_F of the model's state: the fragment is not moved to the origin."""
    layout = MoleculeLayout.from_num_atoms(torch.tensor([5, 8]))
    generator = torch.Generator().manual_seed(0)
    state = initial_state(layout, generator, torch.float64)
    fragment = Fragment(torch.randn(3, 3, generator=generator, dtype=torch.float64) + 4, torch.tensor([1, 2, 0]))
    identity = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)  # [B, 3, 3]
    fixed = lay_out_fragment(fragment, layout, identity, torch.float64, "cpu")
    replaced = replace_fixed(state, fixed, schedule.gamma_table[500], generator)
    torch.testing.assert_close(replaced.z_x[fixed.index].mean(dim=1), state.z_x[fixed.index].mean(dim=1))
    torch.testing.assert_close(centroid(replaced.z_x, layout.batch, 2), torch.zeros(2, 3, dtype=torch.float64))
    free = torch.tensor([3, 4, 8, 9, 10, 11, 12])  # the other atoms are untouched
    torch.testing.assert_close(replaced.z_x[free], state.z_x[free])  # re-projection moves them by rounding only


@pytest.mark.parametrize(("counts", "resample", "message"), [
    ([5, 3], 0, "more atoms than the fragment's 3"),
    ([5], -1, "resample must be >= 0"),
])
def test_impossible_requests_raise(schedule, counts, resample, message):
    fragment = Fragment(torch.zeros(3, 3), torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match=message):
        sample_inpainting(EquivariantDenoiser().float(), schedule, fragment, torch.tensor(counts), steps=2,
                          resample=resample)


def test_round_trips_are_reported_one_network_call_each(schedule):
    """`on_round_trip` ticks after each of the R round trips of every step: with a tick per step, a progress bar
    counts every network call but the final one, so its estimate holds whatever R is."""
    inner, calls, steps, trips = EquivariantDenoiser().float(), [], [], []

    def counting(*inputs):
        calls.append(1)
        return inner(*inputs)

    fragment = Fragment(torch.tensor([[0.0, 0.0, 0.0], [1.4, 0.0, 0.0]]), torch.tensor([1, 1]))
    sample_inpainting(counting, schedule, fragment, torch.tensor([4, 5]), steps=6, resample=3,
                      callback=lambda info: steps.append(info.step), on_round_trip=lambda: trips.append(len(steps)))
    assert len(steps) == 6 and len(trips) == 3 * 6 and len(calls) == len(steps) + len(trips) + 1
    assert trips == [step for step in range(6) for _ in range(3)]  # each step's round trips come before its callback
