"""A denoiser's per-layout set-up (`prepare_layout`, PONITA's size groups) is made once per sampling run and changes
no number."""

from __future__ import annotations

import pytest
import torch

from molgen.diffusion import PolynomialSchedule, sample
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.nn.dense import GroupedLayout

COUNTS = [5, 29, 3, 12, 18, 7]  # several size groups


class CountingPonita(Ponita):
    """PONITA that counts its `prepare_layout` calls and the layouts its forward receives."""

    def __init__(self, config: PonitaConfig) -> None:
        super().__init__(config)
        self.prepared, self.seen = 0, []

    def prepare_layout(self, layout):
        self.prepared += 1
        return super().prepare_layout(layout)

    def forward(self, z_x, z_h, t, layout):
        self.seen.append(layout)
        return super().forward(z_x, z_h, t, layout)


@pytest.mark.parametrize("sampler", ["ancestral", "heun"])
def test_one_set_up_per_run_and_the_same_molecules(sampler):
    torch.manual_seed(0)
    model = CountingPonita(PonitaConfig(hidden=16, layers=2, basis_dim=8, basis_hidden=8)).eval()
    schedule = PolynomialSchedule(timesteps=50)
    runs = []
    for prepare in (True, False):
        if not prepare:  # the plain path: every forward call works the groups out itself
            model.prepare_layout = None
        with torch.inference_mode():
            runs.append(sample(model, schedule, COUNTS, sampler=sampler, steps=4,
                               generator=torch.Generator().manual_seed(3)))
        if prepare:
            assert model.prepared == 1
            assert all(layout is model.seen[0] for layout in model.seen)
            assert isinstance(model.seen[0], GroupedLayout) and len(model.seen[0].groups) > 1
    assert torch.equal(runs[0].x, runs[1].x) and torch.equal(runs[0].atom_type, runs[1].atom_type)
