"""eval/branches.py's branch (d): a finer spatial basis, radial features added by `molgen grow` before training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.evaltools.test_branches import REPOSITORY, branches  # noqa: F401  (the fixture)
from tests.train.helpers import tiny_config


def test_the_radial_branch_is_a_growth(branches):  # noqa: F811
    radial = branches.parse_branch("radial16=grow:--radial-features 16 --radial-basis gaussian")
    assert radial.grow == ("--radial-features", "16", "--radial-basis", "gaussian") and radial.sets == ()


@pytest.mark.slow
def test_the_radial_branch_starts_from_the_main_state_and_trains(branches, tmp_path):  # noqa: F811
    """The branch's start file is the main checkpoint with zero radial columns, and its command trains it."""
    config = tiny_config(tmp_path / "main", max_steps=2).to_dict()
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "molgen", "train", str(tmp_path / "tiny.json"), "--no-progress"],
                   check=True, cwd=REPOSITORY)
    start = tmp_path / "main" / "last.pt"
    command = branches.start_branch(tmp_path / "study", branches.parse_branch("radial4=grow:--radial-features 4"),
                                    start)
    folder = tmp_path / "study" / "radial4"
    model = json.loads((folder / "start_config.json").read_text())["model"]["config"]
    assert (model["radial_features"], model["radial_basis"]) == (4, "bessel")
    main, grown = (torch.load(path, weights_only=True) for path in (start, folder / "grown.pt"))
    assert torch.equal(grown["ema"]["spatial_basis.radial_linear.weight"], torch.zeros(4, 12))
    assert grown["step"] == main["step"] == 2 and grown["molecules"] == main["molecules"]
    subprocess.run([*command, "--max-steps", "3"], check=True, cwd=REPOSITORY, capture_output=True)
    trained = torch.load(folder / "main" / "last.pt", weights_only=True)
    assert trained["step"] == 3 and trained["model"]["spatial_basis.radial_linear.weight"].abs().min() > 0
