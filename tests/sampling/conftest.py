"""A tiny checkpoint shared by the sampling tests."""

from __future__ import annotations

import pytest
from train.helpers import tiny_config  # tests/ is on sys.path (pytest rootdir-based imports)

from molgen.data.stats import node_count_histogram
from molgen.train.loop import Trainer


@pytest.fixture(scope="session")
def checkpoint(qm9_splits, tmp_path_factory):
    """A tiny PONITA trained 2 steps on QM9, with the training split's atom-count histogram."""
    run = tmp_path_factory.mktemp("tiny-run")
    trainer = Trainer(tiny_config(run, max_steps=2), qm9_splits["train"],
                      node_histogram=node_count_histogram(qm9_splits["train"]))
    trainer.run()
    return trainer.last_path
