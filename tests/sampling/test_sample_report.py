"""`molgen sample` writes OUT/report.html (the run's molecules, its chain and fixed atoms) unless --no-report, and
`molgen evaluate --checkpoint --report` writes one of its samples."""

from __future__ import annotations

import json
import re

from molgen.cli import main


def _payload(path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script id="molgen-data" type="application/json">(.*?)</script>', text, re.S)[1])


def test_sample_writes_a_report_with_the_chain_and_the_summary(checkpoint, tmp_path):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "4", "--steps", "3", "--seed", "7", "--out",
                 str(out), "--grid", "0", "--chain", "--chain-frames", "3", "--no-progress"]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    payload = _payload(out / "report.html")
    assert text.count("data-index=") == 4 and len(payload["molecules"]) == 4 and len(payload["chain"]) == 3
    for shown in ("<th>seed</th><td>7</td>", "<th>steps</th><td>3</td>", "<th>sampler</th><td>ancestral</td>",
                  str(checkpoint), "<th>compute</th>"):
        assert shown in text, shown
    assert payload["chain"][-1]["e"] == payload["molecules"][0]["e"]  # the chain ends in molecule 0
    summary = json.loads((out / "summary.json").read_text())
    assert str(out / "report.html") in summary["files"]


def test_no_report_writes_none(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--out", str(out), "--grid",
                 "0", "--no-report", "--no-progress"]) == 0
    assert not (out / "report.html").exists() and "report.html" not in capsys.readouterr().out


def test_fixed_atoms_are_marked_in_the_report(checkpoint, tmp_path):
    fragment = tmp_path / "fragment.xyz"
    fragment.write_text("3\nC C O\nC 0.0 0.0 0.0\nC 1.5 0.0 0.0\nO 2.2 1.1 0.0\n")
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(checkpoint), "-n", "2", "--steps", "2", "--out", str(out), "--grid",
                 "0", "--fix", str(fragment), "--no-progress"]) == 0
    assert _payload(out / "report.html")["fixed"] == 3
    assert "fixed fragment" in (out / "report.html").read_text(encoding="utf-8")


def test_evaluate_checkpoint_writes_a_report(checkpoint, tmp_path, capsys):
    report = tmp_path / "report.html"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--num-samples", "3", "--steps", "2", "--nll-passes",
                 "0", "--novelty", "no", "--report", str(report), "--no-progress"]) == 0
    assert f"report written to {report}" in capsys.readouterr().out
    assert len(_payload(report)["molecules"]) == 3
    assert "further checks" in report.read_text(encoding="utf-8")  # evaluate's added figures beside EDM's
