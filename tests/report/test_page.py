"""report.html as text: self-contained, one card per molecule, the SDF's bonds, flags, filters and metrics."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from report.molecules import embedded, molecules, rows

import molgen.report.page as page
from molgen.chem.io import write_sdf
from molgen.chem.metrics import Metrics, check_molecule
from molgen.report.cards import failed_checks, viewer_molecule
from molgen.report.page import report_html, write_report

REPOSITORY = Path(__file__).resolve().parents[2]


def _payload(text: str) -> dict:
    found = re.search(r'<script id="molgen-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


def _page(made, **options) -> str:
    checks = [check_molecule(x, types) for x, types in made]
    metrics = Metrics.from_checks(checks).to_dict()
    return report_html(made, rows(made), [("seed", 3)], metrics, **options)


def test_the_page_needs_nothing_from_outside_and_forbids_requests():
    text = _page(molecules(6))
    assert not re.search(r"https?:|//[a-z]|\bsrc=|\bhref=|url\(|@import|@font-face", text, re.I)
    assert "default-src 'none'" in text  # the Content-Security-Policy: the browser refuses any request
    assert text.count("data-index=") == 6 and text.count("<svg") == 6
    assert "MolgenViewer" in text and "molgenReport" in text  # viewer.js and report.js inlined


def test_viewer_bonds_are_the_sdf_bonds_and_the_shape_is_kept(tmp_path):
    x, types = embedded("CN(C)C=O")
    write_sdf(tmp_path / "m.sdf", [(x, types)])
    lines = (tmp_path / "m.sdf").read_text().splitlines()
    atoms, bonds = int(lines[3][:3]), int(lines[3][3:6])
    written = sorted([int(line[:3]) - 1, int(line[3:6]) - 1, int(line[6:9])]
                     for line in lines[4 + atoms: 4 + atoms + bonds])
    viewer = viewer_molecule(x, types)
    assert sorted(viewer["b"]) == written and any(order == 2 for *_, order in written)
    shown = np.array(viewer["x"]).reshape(-1, 3)
    assert viewer["e"] == types.tolist() and np.abs(shown.mean(axis=0)).max() < 1e-3
    distances = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(shown), distances(x), atol=2e-3)  # turned and centred, not deformed


def test_failed_checks_name_each_failure_and_each_posebusters_check():
    row = {"stable": False, "valid": True, "connected": False, "posebusters_failed": "bond_lengths;internal_clash"}
    assert failed_checks(row) == ["not stable", "not connected", "PoseBusters: bond_lengths",
                                  "PoseBusters: internal_clash"]
    assert failed_checks({"stable": True, "valid": True, "posebusters_failed": ""}) == []


def test_cards_carry_the_flags_the_filters_read():
    made = molecules(9)
    table = rows(made)
    text = _page(made)
    cards = re.findall(r'<div class="card[^"]*" data-index="(\d+)" data-stable="(\d)" data-valid="(\d)" '
                       r'data-fails="([^"]*)"', text)
    assert [(int(i), s == "1", v == "1") for i, s, v, _ in cards] == [
        (row["index"], row["stable"], row["valid"]) for row in table]
    assert {row["stable"] for row in table} == {True, False}  # the data mixes both
    for (_, _, _, fails), row in zip(cards, table):
        assert fails.split("|") == failed_checks(row) or (fails == "" and not failed_checks(row))
    options = re.findall(r'<option value="([^"]+)">', text)
    assert options == [name for name in ("not stable", "not valid", "not connected")
                       if any(name in failed_checks(row) for row in table)]


def test_metrics_sit_beside_edm_and_further_checks_show_where_present():
    made = molecules(3)
    checks = [check_molecule(x, types) for x, types in made]
    metrics = Metrics.from_checks(checks).to_dict()
    table = page.metrics_table(metrics)
    for reference in ("98.7", "82.0", "91.9", "90.7"):
        assert f'<td class="number">{reference}</td>' in table
    assert f"{metrics['n_stable_molecules']} / 3" in table
    assert page.extended_table(metrics) == ""
    extended = page.extended_table({**metrics, "connected": 0.5,
                                    "distances": {"bond_lengths": 0.0123, "valency": {"H": 0.25, "C": 2.0}}})
    assert "connected" in extended and "distances · bond_lengths" in extended and "0.0123" in extended
    assert '<td>distances · valency</td><td class="group">H 0.25 · C 2</td>' in extended  # a deeper group, one row


def test_chain_frames_share_one_view_and_fixed_atoms_are_marked():
    x, types = embedded("CC(=O)O")
    frames = [(x * scale, types, f"t = {scale}") for scale in (3.0, 1.5, 1.0)]
    made = [(x, types)] * 2
    payload = _payload(_page(made, chain=frames, fixed_atoms=2))
    assert payload["fixed"] == 2 and [frame["label"] for frame in payload["chain"]] == ["t = 3.0", "t = 1.5", "t = 1.0"]
    first, last = (np.array(payload["chain"][i]["x"]).reshape(-1, 3) for i in (0, -1))
    np.testing.assert_allclose(first, 3 * last, atol=5e-3)  # one rotation for every frame
    assert _payload(_page(made))["chain"] is None


def test_text_from_outside_cannot_break_the_page():
    made = molecules(2)
    text = report_html(made, rows(made), [("source", "a</script><b>.sdf")], {}, title="<i>x</i>")
    assert "a</script><b>" not in text and "<i>x</i>" not in text
    table = rows(made)
    table[0]["smiles"] = "C</script>"
    assert _payload(report_html(made, table, [], {}))["molecules"][0]["e"] == made[0][1].tolist()


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    made = molecules(3)
    path = tmp_path / "report.html"

    def broken(*args, **kwargs):
        raise RuntimeError("depiction failed")

    path.write_text("the previous report")
    monkeypatch.setattr(page, "chain_payload", broken)
    with pytest.raises(RuntimeError):
        write_report(path, made, rows(made), [], {}, chain=[(made[0][0], made[0][1], "t = 0")])
    assert list(tmp_path.iterdir()) == [path] and path.read_text() == "the previous report"


def test_the_viewer_files_ship_with_the_package():
    data = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assets = sorted(p.name for p in (REPOSITORY / "molgen" / "report").iterdir() if p.suffix in (".js", ".css"))
    assert assets == ["report.css", "report.js", "viewer.js"]
    patterns = data["molgen.report"]
    assert all(any(Path(name).match(pattern) for pattern in patterns) for name in assets)
