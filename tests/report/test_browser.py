"""report.html in a real browser (Debian's Chromium driven by Playwright): offline, no console errors, views that
paint and turn, filters, and at most POOL canvases however far a 1,000-molecule report is scrolled.

Under CI=true a missing browser fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from report.molecules import embedded, molecules, rows

from molgen.chem.metrics import Metrics, check_molecule
from molgen.report.page import POOL, write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGUMENTS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.slow  # a browser start and pages of 100 and 1,000 molecules: several seconds

# JavaScript run in the page: the pixels of a canvas that differ from the background (white), and from a snapshot
NOT_BACKGROUND = """canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
  return n;
}"""
SNAPSHOT = "canvas => { window.snapshot = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data; }"
CHANGED = """canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] !== window.snapshot[i] || d[i + 1] !== window.snapshot[i + 1]) n++;
  return n;
}"""
SCROLL_TO_THE_END = """async () => {  // two screens a step, three frames to settle; the most canvases seen
  const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
  let most = 0;
  for (let top = 0; top < document.documentElement.scrollHeight; top += 2 * innerHeight) {
    scrollTo(0, top);
    for (let k = 0; k < 3; k++) await frame();
    most = Math.max(most, document.querySelectorAll('canvas').length);
  }
  scrollTo(0, document.documentElement.scrollHeight);
  return most;
}"""
ORANGE = """canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 240 && d[i + 1] > 130 && d[i + 1] < 175 && d[i + 2] < 40) n++;
  return n;
}"""


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None and not CHROMIUM.exists():
        problem = f"no browser at {CHROMIUM} (apt-get install chromium)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGUMENTS)
        yield launched
        launched.close()


def _report(path: Path, count: int, **options) -> list[dict]:
    made = molecules(count)
    table = rows(made)
    metrics = Metrics.from_checks([check_molecule(x, types) for x, types in made]).to_dict()
    write_report(path, made, table, [("seed", 0)], metrics, **options)
    return table


def _open(browser, path: Path, viewport: dict | None = None):
    """A page showing the report, with every request and every console error or page error it had."""
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_function("() => window.molgenReport && window.molgenReport.lent() > 0")
    return page, requests, errors


def _drag(page, canvas) -> None:
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 70, y + 25, steps=6)
    page.mouse.up()


def test_a_report_opens_offline_and_its_views_paint_turn_and_filter(browser, tmp_path):
    x, types = embedded("CC(=O)O")
    chain = [(x * scale, types, f"t = {scale}") for scale in (4.0, 2.0, 1.0)]
    path = tmp_path / "report.html"
    table = _report(path, 100, chain=chain, fixed_atoms=2)
    page, requests, errors = _open(browser, path)

    assert page.locator(".card").count() == 100
    canvas = page.locator(".card").first.locator("canvas")
    assert canvas.evaluate(NOT_BACKGROUND) > 500  # the molecule is drawn
    assert canvas.evaluate(ORANGE) > 20  # its two fixed atoms are ringed
    canvas.evaluate(SNAPSHOT)
    _drag(page, canvas)
    assert canvas.evaluate(CHANGED) > 200  # the drag turned it
    canvas.evaluate(SNAPSHOT)
    canvas.hover()
    page.mouse.wheel(0, -400)
    assert canvas.evaluate(CHANGED) > 200  # the wheel zoomed it

    page.check("#only-stable")
    stable = [row["index"] for row in table if row["stable"]]
    assert 0 < len(stable) < 100
    shown = page.locator(".card:visible")
    assert shown.count() == len(stable)
    assert sorted(int(i) for i in shown.evaluate_all("cards => cards.map(c => c.dataset.index)")) == stable
    assert page.text_content("#shown") == f"{len(stable)} of 100 molecules shown"
    page.uncheck("#only-stable")
    page.fill("#search", "C#N")
    assert page.locator(".card:visible").count() == sum("C#N" in row["smiles"] for row in table) > 0

    chain_view = page.locator("#chain-view")
    chain_view.scroll_into_view_if_needed()
    first = page.text_content("#chain-label")
    page.wait_for_function("first => document.getElementById('chain-label').textContent !== first", arg=first)
    assert chain_view.evaluate(NOT_BACKGROUND) > 200  # the chain plays
    assert requests and all(url.startswith("file://") for url in requests), requests
    assert errors == []


def test_scrolling_a_thousand_molecules_keeps_at_most_pool_canvases(browser, tmp_path):
    path = tmp_path / "report.html"
    _report(path, 1000)
    page, requests, errors = _open(browser, path, {"width": 2600, "height": 2200})  # more cards than canvases
    assert page.locator(".card").count() == 1000
    page.wait_for_function("pool => document.querySelectorAll('canvas').length === pool", arg=POOL)
    most = page.evaluate(SCROLL_TO_THE_END)
    page.set_viewport_size({"width": 1280, "height": 900})  # fewer cards on screen: the last one gets a canvas
    page.evaluate("scrollTo(0, document.documentElement.scrollHeight)")
    last = page.locator(".card").last
    page.wait_for_function("() => document.querySelector('.card:last-child canvas') !== null")
    assert last.locator("canvas").evaluate(NOT_BACKGROUND) > 500  # the last card is drawn too
    assert most == POOL and page.evaluate("molgenReport.created()") == POOL
    assert page.evaluate("molgenReport.pool") == POOL
    assert all(url.startswith("file://") for url in requests) and errors == []
