"""report.html: one self-contained page of a run's molecules that works offline from a file:// URL.

Everything is inline: the style sheet, the viewer (viewer.js, canvas 2D) and the page's script (report.js), the
RDKit depictions as SVG and the molecules as JSON. A Content-Security-Policy forbids the page any request.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from molgen.atomic import atomic_write
from molgen.batch import Molecule
from molgen.chem.chain_view import principal_axes
from molgen.report.cards import FAILURES, POSEBUSTERS, failed_checks, molecule_card, viewer_molecule

POOL = 24  # at most this many canvases exist for the cards; the cards on screen borrow them
# EDM on QM9 (Hoogeboom et al. 2022, Table 1), in %
EDM_REFERENCE = {"atom_stable": 98.7, "mol_stable": 82.0, "validity": 91.9, "valid_and_unique": 90.7}
# (metric key, label, numerator key, denominator key) as Metrics.to_dict names them
METRICS = (
    ("atom_stable", "atom stability", "n_stable_atoms", "n_atoms"),
    ("mol_stable", "molecule stability", "n_stable_molecules", "n_molecules"),
    ("validity", "validity", "n_valid", "n_molecules"),
    ("uniqueness", "uniqueness", "n_unique", "n_valid"),
    ("valid_and_unique", "valid & unique", "n_unique", "n_molecules"),
    ("novelty", "novelty", "n_novel", "n_unique"),
)
EXTENDED = ("connected", "fragments", "distances", "strain", "posebusters")  # further checks, shown where present
POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
SDF_BONDS = "EDM's distance rule (the bonds molgen writes in molecules.sdf)"
ChainFrame = tuple[np.ndarray, np.ndarray, str]  # positions [N, 3], atom types [N], label


def _asset(name: str) -> str:
    return resources.files("molgen.report").joinpath(name).read_text(encoding="utf-8")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    return "–" if isinstance(value, float) and math.isnan(value) else f"{value:,.4g}"


def summary_table(summary: Sequence[tuple[str, Any]]) -> str:
    """The run's summary (checkpoint, sampler, steps, seed, compute, ...) as a two-column table."""
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
                   for label, value in summary)
    return f'<table class="summary">{rows}</table>'


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """EDM's metrics of these molecules (%, with counts) beside EDM's own row on QM9."""
    rows = []
    for key, label, numerator, denominator in METRICS:
        if key not in metrics:
            continue
        value, reference = metrics[key], EDM_REFERENCE.get(key)
        count = "–" if metrics.get(numerator) is None else f"{metrics[numerator]:,} / {metrics[denominator]:,}"
        rows.append(f'<tr><td>{label}</td><td class="number">{"–" if value is None else f"{100 * value:.1f}"}</td>'
                    f'<td class="number">{count}</td>'
                    f'<td class="number">{"–" if reference is None else f"{reference:.1f}"}</td></tr>')
    return ('<table class="metrics"><tr><th>metric</th><th>these molecules, %</th><th>count</th>'
            f'<th>EDM on QM9, %</th></tr>{"".join(rows)}</table>')


def _rows_of(name: str, value: Any) -> list[tuple[str, str, bool]]:
    """(label, cell, numeric) rows of one further check: a group's entries one row each, a deeper group in one cell."""
    if not isinstance(value, Mapping):
        return [(name, _number(value), True)]
    rows = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            rows.append((f"{name} · {key}", " · ".join(f"{html.escape(str(k))} {_number(v)}" for k, v in item.items()),
                         False))
        else:
            rows.append((f"{name} · {key}", _number(item), True))
    return rows


def extended_table(metrics: Mapping[str, Any]) -> str:
    """The further checks (connectivity, distribution distances, strain, PoseBusters) where the metrics have them;
    '' when they have none."""
    rows = [row for key in EXTENDED if key in metrics for row in _rows_of(key, metrics[key])]
    if not rows:
        return ""
    cells = "".join(f'<tr><td>{html.escape(label)}</td><td class="{"number" if numeric else "group"}">{cell}</td></tr>'
                    for label, cell, numeric in rows)
    return f'<table class="extended"><tr><th>further checks</th><th>value</th></tr>{cells}</table>'


def filters_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The filter bar: stable only, valid only, failing a check (those some molecule fails), SMILES search."""
    failed = {name for row in rows for name in failed_checks(row)}
    ordered = [name for _, name in FAILURES if name in failed] + sorted(n for n in failed if n.startswith(POSEBUSTERS))
    options = "".join(f'<option value="{html.escape(name)}">{html.escape(name)}</option>' for name in ordered)
    return ('<div class="filters"><label><input type="checkbox" id="only-stable"> stable only</label>'
            '<label><input type="checkbox" id="only-valid"> valid only</label>'
            f'<label>failing <select id="failing"><option value="">(any check)</option>{options}</select></label>'
            '<label>SMILES contains <input type="search" id="search" placeholder="e.g. C=O (case matters)"></label>'
            '<span id="shown"></span></div>')


def chain_payload(frames: Sequence[ChainFrame]) -> list[dict]:
    """The chain's frames for the viewer, all turned into the finished molecule's principal axes."""
    rotation = principal_axes(np.asarray(frames[-1][0], dtype=np.float64))  # [3, 3]
    return [{**viewer_molecule(x, types, rotation=rotation), "label": label} for x, types, label in frames]


def _chain_section(present: bool) -> str:
    if not present:
        return ""
    return ('<div id="chain"><h2>Denoising chain of molecule 0</h2><canvas id="chain-view"></canvas>'
            '<p><button id="chain-play" type="button">pause</button> <span id="chain-label"></span></p>'
            '<p class="note">Every frame in the finished molecule\'s principal axes; atoms take their type at that '
            "frame, bonds EDM's rule at that frame.</p></div>")


def _key() -> str:
    colours = ("#ececec", "#505050", "#3050f8", "#e11e1e", "#46be46")
    return '<span class="key">' + "".join(f'<span style="background:{c}"></span>{e}'
                                          for c, e in zip(colours, "HCNOF")) + "</span>"


def report_html(
    molecules: Sequence[Molecule], rows: Sequence[Mapping[str, Any]], summary: Sequence[tuple[str, Any]],
    metrics: Mapping[str, Any], chain: Sequence[ChainFrame] = (), fixed_atoms: int = 0, title: str = "molgen report",
    orders: Sequence[np.ndarray] | None = None, bonds: str = SDF_BONDS,
) -> str:
    """The whole page as text; see `write_report`."""
    if len(rows) != len(molecules):
        raise ValueError(f"{len(molecules)} molecules but {len(rows)} rows")
    made = [molecule_card(x, types, row, fixed_atoms, None if orders is None else orders[i])
            for i, ((x, types), row) in enumerate(zip(molecules, rows))]
    payload = {"pool": POOL, "fixed": fixed_atoms, "molecules": [viewer for viewer, _ in made],
               "chain": chain_payload(chain) if chain else None}
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    fixed_note = f" The first {fixed_atoms} atoms of every molecule are the fixed fragment (ringed in orange)." \
        if fixed_atoms else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{_asset('report.css')}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<div class="tables">{summary_table(summary)}{metrics_table(metrics)}{extended_table(metrics)}'
            f"{_chain_section(bool(chain))}</div><h2>Molecules</h2><p class=\"note\">Ball and stick with bonds from "
            f"{html.escape(bonds)}, coloured by element {_key()}. Drag a 3D view to rotate it, use the wheel to "
            f"zoom. Stable molecules are framed in green.{fixed_note}</p>"
            f'{filters_html(rows)}<div class="cards">{"".join(card for _, card in made)}</div>'
            f'<script id="molgen-data" type="application/json">{data}</script>'
            f"<script>{_asset('viewer.js')}\n{_asset('report.js')}</script></body></html>\n")


def write_report(
    path: str | Path, molecules: Sequence[Molecule], rows: Sequence[Mapping[str, Any]],
    summary: Sequence[tuple[str, Any]], metrics: Mapping[str, Any], chain: Sequence[ChainFrame] = (),
    fixed_atoms: int = 0, title: str = "molgen report", orders: Sequence[np.ndarray] | None = None,
    bonds: str = SDF_BONDS,
) -> None:
    """Write report.html atomically.

    Args:
        molecules: (positions [N, 3] Å, atom types [N]) per molecule; rows: one `molecule_rows` dict each.
        summary: (label, value) pairs describing the run; metrics: `Metrics.to_dict()` and any further checks.
        chain: (positions, atom types, label) per frame of molecule 0's denoising, played in 3D when given.
        fixed_atoms: the first this many atoms of every molecule are a fixed fragment, highlighted.
        orders: bond orders [N, N] per molecule (default: EDM's distance rule, the bonds molgen's SDF holds), and
            `bonds` says where they come from.
    """
    text = report_html(molecules, rows, summary, metrics, chain, fixed_atoms, title, orders, bonds)
    with atomic_write(path, "wb") as handle:
        handle.write(text.encode("utf-8"))
