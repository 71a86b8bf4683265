"""`molgen evaluate FILE --report OUT.html`: the scored molecules' page, its bonds, and its one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
from report.molecules import molecules

from molgen.chem.io import write_sdf
from molgen.cli import main


def _payload(path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script id="molgen-data" type="application/json">(.*?)</script>', text, re.S)[1])


def test_evaluate_writes_a_report_of_the_scored_molecules(tmp_path, capsys):
    made = molecules(4)
    write_sdf(tmp_path / "mols.sdf", made)
    report = tmp_path / "pages" / "report.html"
    assert main(["evaluate", str(tmp_path / "mols.sdf"), "--novelty", "no", "--report", str(report)]) == 0
    assert f"report written to {report}" in capsys.readouterr().out
    text = report.read_text(encoding="utf-8")
    assert text.count("data-index=") == 4 and "mols.sdf" in text and "98.7" in text
    assert "further checks" in text and "connected" in text  # the added figures of `evaluate`
    assert [m["e"] for m in _payload(report)["molecules"]] == [types.tolist() for _, types in made]


def test_the_report_draws_the_bonds_that_scored_the_molecules(tmp_path):
    x, types = molecules(1)[0]
    order = np.zeros((len(types), len(types)), dtype=np.int64)
    order[0, 1] = order[1, 0] = 3  # one triple bond, which EDM's rule would not give
    write_sdf(tmp_path / "mols.sdf", [(x, types)], orders=[order])
    edm, own = tmp_path / "edm.html", tmp_path / "own.html"
    assert main(["evaluate", str(tmp_path / "mols.sdf"), "--novelty", "no", "--report", str(edm)]) == 0
    assert main(["evaluate", str(tmp_path / "mols.sdf"), "--novelty", "no", "--bonds", "file", "--report",
                 str(own)]) == 0
    assert len(_payload(edm)["molecules"][0]["b"]) == len(types) - 1  # EDM's bonds of the molecule (a tree)
    assert _payload(own)["molecules"][0]["b"] == [[0, 1, 3]]
    assert "the files&#x27; own bond blocks" in own.read_text(encoding="utf-8")


def test_an_unwritable_report_fails_before_scoring(tmp_path, capsys):
    write_sdf(tmp_path / "mols.sdf", molecules(2))
    (tmp_path / "blocked").write_text("")
    assert main(["evaluate", str(tmp_path / "mols.sdf"), "--novelty", "no", "--report",
                 str(tmp_path / "blocked" / "report.html")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("molgen: error: cannot write") and captured.err.count("\n") == 1
    assert "molecules from" not in captured.out  # nothing was scored
