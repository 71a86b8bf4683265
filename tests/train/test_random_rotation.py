"""data.random_rotation: every training molecule turned by its own random rotation each step, reproducibly, with
the steps t and the noise unchanged, and a resumed run still bitwise equal to an uninterrupted one."""

from __future__ import annotations

import torch

from molgen.config import RunConfig
from molgen.train.batches import StepBatches
from molgen.train.loop import Trainer
from molgen.train.randomness import per_sample_rotations

from .helpers import assert_same_state, tiny_config


def _trainer(qm9_splits, run_dir, **train) -> Trainer:
    config = tiny_config(run_dir, **train)
    values = config.to_dict()
    values["data"]["random_rotation"] = True
    return Trainer(RunConfig.from_dict(values), qm9_splits["train"])


def test_rotations_depend_only_on_seed_step_and_index():
    rotations = per_sample_rotations(0, 5, [3, 7, 3], torch.float64)  # [3, 3, 3]
    torch.testing.assert_close(rotations[0], rotations[2])
    assert not torch.allclose(rotations[0], rotations[1])
    torch.testing.assert_close(per_sample_rotations(0, 5, [7], torch.float64)[0], rotations[1])
    assert not torch.allclose(per_sample_rotations(0, 6, [3], torch.float64)[0], rotations[0])
    identity = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), identity)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(3, dtype=torch.float64))


def test_batches_are_turned_and_their_noise_is_unchanged(qm9_splits):
    """Same t and noise as without the option; positions turned rigidly (distances kept, centroid zero)."""
    train, indices = qm9_splits["train"], torch.tensor([0, 5, 9])
    plain = StepBatches(train, 0, 1000, torch.device("cpu"), prefetch=False)
    turned = StepBatches(train, 0, 1000, torch.device("cpu"), prefetch=False, random_rotation=True)
    batch, t_int, eps, _ = plain.prepare_host(indices, 4)
    rotated, t_rot, eps_rot, _ = turned.prepare_host(indices, 4)
    assert torch.equal(t_int, t_rot) and torch.equal(eps, eps_rot)
    assert not torch.allclose(batch.x, rotated.x)
    for start, end in zip(batch.ptr[:-1].tolist(), batch.ptr[1:].tolist()):
        torch.testing.assert_close(torch.cdist(rotated.x[start:end], rotated.x[start:end]),
                                   torch.cdist(batch.x[start:end], batch.x[start:end]), atol=1e-5, rtol=0)
        torch.testing.assert_close(rotated.x[start:end].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert torch.equal(batch.atom_type, rotated.atom_type)


def test_resume_with_rotations_is_bitwise(qm9_splits, tmp_path):
    straight = _trainer(qm9_splits, tmp_path / "a")
    straight.run(max_steps=4)
    first = _trainer(qm9_splits, tmp_path / "b")
    first.run(max_steps=2)
    resumed = _trainer(qm9_splits, tmp_path / "b")
    resumed.load_checkpoint(tmp_path / "b" / "last.pt")
    resumed.run(max_steps=4)
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), "model")
    plain = Trainer(tiny_config(tmp_path / "c"), qm9_splits["train"])
    plain.run(max_steps=4)
    assert not torch.equal(plain.model.embed.weight, straight.model.embed.weight)
