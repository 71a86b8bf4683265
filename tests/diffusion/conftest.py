"""Run the diffusion tests on one intra-op thread: their tensors are tiny, and two threads on a shared 2-core
machine mostly wait on each other (the 1000-step sampler test ran 10x slower under load)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
