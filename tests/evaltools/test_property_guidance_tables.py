"""eval/property_guidance.py: runs of the same pairs merge into one table, each (scale, bound) once, the unguided row
first; runs of other pairs are refused; the paired bootstrap interval brackets the mean difference."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "property_guidance.py"


@pytest.fixture(scope="module")
def protocol():
    spec = importlib.util.spec_from_file_location("property_guidance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["property_guidance"] = module
    spec.loader.exec_module(module)
    return module


def _run(protocol, rows, **changes):
    baselines = [{"row": "Naive (shuffled targets, upper bound)", "mae": 9.0},
                 {"row": "#Atoms (median of c given N over D_b)", "mae": 4.0},
                 {"row": "QM9 (evaluator on the pairs' D_b molecules, lower bound)", "mae": 1.0}]
    generated = [{"row": protocol.row_label(scale, bound), "mae": mae, "mae_valid": mae, "mol_stable": 0.3,
                  "validity": 0.7, "seconds": 1.0, "scale": scale, "bound": bound, "errors": [mae - 1, mae, 100.0]}
                 for scale, bound, mae in rows]
    result = {"property": "alpha", "unit": "Bohr^3", "molecules": 10, "steps": 100, "seed": 0, "checkpoint": "a.pt",
              "checkpoint_sha256": "0" * 64, "guide_sha256": "1" * 64, "evaluator_sha256": "2" * 64,
              "compute": "cpu", "rows": baselines + generated}
    return {**result, **changes}


def test_runs_of_the_same_pairs_merge_each_scale_and_bound_once(protocol):
    first = _run(protocol, [(0.0, None, 5.0), (2.0, None, 4.5)])
    second = _run(protocol, [(0.0, None, 5.0), (3.0, 1.0, 4.2), (2.0, 1.0, 4.4)])
    third = {**_run(protocol, [(0.0, None, 5.0), (2.0, None, 4.5)]), "rows": _run(protocol, [])["rows"]
             + [{"row": "guided, s = 4", "mae": 4.0, "scale": 4.0}]}  # a row written before bounds existed
    (result,) = protocol.merged([first, second, third])
    labels = [row["row"] for row in result["rows"][3:]]
    assert labels == ["unguided (s = 0)", "guided, s = 2, bound 1", "guided, s = 2", "guided, s = 3, bound 1",
                      "guided, s = 4"]
    table = protocol.table(result)
    assert "| guided, s = 3, bound 1 | 4.2 | 4.2 | 4.2 | 30.0% |" in table  # the median error beside the mean
    assert "| guided, s = 4 | 4 |  |  |  |" in table and table.count("unguided (s = 0)") == 1


def test_runs_of_other_pairs_are_refused(protocol):
    with pytest.raises(ValueError, match="different pairs or files"):
        protocol.merged([_run(protocol, [(0.0, None, 5.0)]), _run(protocol, [(2.0, None, 4.0)], seed=1)])


def test_the_paired_bootstrap_interval_brackets_the_mean_difference(protocol):
    rng = np.random.default_rng(0)
    unguided = rng.uniform(0, 10, 500)
    guided = unguided - 1.0 + rng.normal(0, 0.5, 500)
    mean, low, high = protocol.paired_bootstrap(guided, unguided)
    assert mean == pytest.approx(float(np.mean(guided - unguided)))
    assert low < mean < high < 0 and high - low < 0.2  # standard error 0.5 / sqrt(500) = 0.022
