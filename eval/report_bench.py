"""report.html measured: the file size for 100 and 1,000 molecules, the time to write a 100-molecule report, a
1,000-molecule report opened and scrolled to the end in Chromium, and the README's screenshot.

Usage:
    python eval/report_bench.py                 # writes eval/report_bench.md and eval/report_screenshot.png

The molecules are the shipped checkpoint's (default sampler, seed 0, one thread; 100 with the chain of molecule 0,
then 1,000), written with `molgen.cli_report.write_sample_report`, the function `molgen sample` calls. The write is
timed five times (median and slowest). Chromium (/usr/bin/chromium, headless, through Playwright) opens the
1,000-molecule report from its file:// URL and scrolls to the end two screens at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from molgen.checkpoint import resolve_checkpoint
from molgen.chem.figures import fast_figures, score
from molgen.cli_report import write_sample_report
from molgen.report.page import POOL
from molgen.sampling import sample_molecules

HERE = Path(__file__).resolve().parent
ARGUMENTS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
SCROLL = """async () => {
  const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
  let most = 0;
  for (let top = 0; top < document.documentElement.scrollHeight; top += 2 * innerHeight) {
    scrollTo(0, top);
    for (let k = 0; k < 3; k++) await frame();
    most = Math.max(most, document.querySelectorAll('canvas').length);
  }
  return most;
}"""


def _figures(samples) -> dict:
    """What `molgen sample`'s summary holds: EDM's metrics, connectivity and the distances to QM9's test split."""
    return {**samples.metrics().to_dict(), **fast_figures(score(samples.molecules, checks=samples.checks))}


def _write(path: Path, samples, figures: dict) -> float:
    start = time.perf_counter()
    write_sample_report(path, samples, figures)
    return time.perf_counter() - start


def _browser(small: Path, large: Path, screenshot: Path) -> tuple[float, float, int]:
    """(seconds to open the large report, seconds to scroll it to the end, most canvases seen); the screenshot of
    the small one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGUMENTS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(small.as_uri())
        page.wait_for_function("() => window.molgenReport.lent() > 0")
        page.wait_for_timeout(1500)  # the chain a few frames on
        page.screenshot(path=str(screenshot))
        start = time.perf_counter()
        page.goto(large.as_uri())
        page.wait_for_function("() => window.molgenReport.lent() > 0")
        opened = time.perf_counter() - start
        start = time.perf_counter()
        most = page.evaluate(SCROLL)
        scrolled = time.perf_counter() - start
        browser.close()
    return opened, scrolled, most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "report_bench.md")
    parser.add_argument("--screenshot", type=Path, default=HERE / "report_screenshot.png")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(None)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    hundred = sample_molecules(num_molecules=100, seed=0, chain_frames=10, threads=1, progress=False)
    thousand = sample_molecules(num_molecules=1000, seed=0, threads=1, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        small, large = Path(folder) / "report_100.html", Path(folder) / "report_1000.html"
        figures = _figures(hundred)
        times = [_write(small, hundred, figures) for _ in range(5)]
        large_time = _write(large, thousand, _figures(thousand))
        sizes = small.stat().st_size, large.stat().st_size
        opened, scrolled, most = _browser(small, large, args.screenshot)
    lines = [
        "# report.html: size and speed",
        "",
        f"`python eval/report_bench.py`; molecules from `{checkpoint.name}` (sha256 {digest}), default sampler, seed 0; "
        "the writes ran on an AMD EPYC (AVX-512 bf16, no AMX), one Python thread (the write computes no tensors), on a "
        "shared 2-core machine under load (other processes running), so the times are upper bounds.",
        "",
        "| molecules | file size | write time |",
        "|---|---|---|",
        f"| 100 (with the chain of molecule 0) | {sizes[0] / 2**20:.2f} MiB | median {statistics.median(times):.2f} s, "
        f"slowest {max(times):.2f} s of 5 |",
        f"| 1,000 | {sizes[1] / 2**20:.2f} MiB | {large_time:.2f} s |",
        "",
        f"Headless Chromium (/usr/bin/chromium) opened the 1,000-molecule report in {opened:.1f} s and scrolled it "
        f"to the end, two screens a step (1280 x 1100 window), in {scrolled:.1f} s with at most {most} canvases alive "
        f"(the pool holds {POOL}).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
