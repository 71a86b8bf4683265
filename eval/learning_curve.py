"""The shipped model's learning curve and where it is heading: the validation NLL of the main branch's EMA against
epochs, fitted with a power law with an asymptote, NLL(E) = a + b E^(-c), by least squares for E >= --from-epoch
(a grid over c, a and b solved exactly for each; `--exponent c` fixes c, for a short stretch such as a grown
model's own points, whose curvature alone cannot pin the asymptote); and, as the other bound, the pace of the last
doubling of the epochs kept for every further doubling (a straight line in log epochs; where the points span less
than a doubling, their whole span's pace, converted to nats per doubling).

    python eval/learning_curve.py checkpoints/qm9_ponita_cpu.log.csv:0:23864 runs/qm9_ponita_cpu/log.csv:23865:
        [--train-size 100000] [--batch 64] [--at 60,100,200,1100]

Each argument is a log.csv with the step range of its rows to use (FILE:FIRST:LAST, either end open); later files
win where steps repeat. Only `eval` rows count (the EMA's validation NLL on the fixed 2,000-molecule subset).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read_curve(specs: list[str], batch: int, train_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(epochs [K], validation NLL [K]) from the eval rows of the given logs, by step."""
    points: dict[int, float] = {}
    for spec in specs:
        path, _, bounds = spec.partition(":")
        first, _, last = bounds.partition(":")
        low, high = int(first or 0), int(last) if last else None
        with open(Path(path), newline="") as handle:
            for row in csv.DictReader(handle):
                step = int(row["step"])
                if row["kind"] == "eval" and row["val_nll"] and step >= low and (high is None or step <= high):
                    points[step] = float(row["val_nll"])
    steps = np.array(sorted(points))
    return steps * batch / train_size, np.array([points[s] for s in steps])


def fit_power_law(epochs: np.ndarray, nll: np.ndarray,
                  exponent: float | None = None) -> tuple[float, float, float, float]:
    """(a, b, c, rms residual) of NLL = a + b E^(-c) with the smallest squared error, c on a grid in (0, 3] or fixed."""
    best = None
    for c in np.linspace(0.02, 3.0, 1491) if exponent is None else [exponent]:
        design = np.stack([np.ones_like(epochs), epochs ** (-c)], axis=1)  # [K, 2]
        (a, b), *_ = np.linalg.lstsq(design, nll, rcond=None)
        error = float(np.sqrt(np.mean((design @ np.array([a, b]) - nll) ** 2)))
        if best is None or error < best[3]:
            best = (float(a), float(b), float(c), error)
    return best


def pace_per_doubling(epochs: np.ndarray, nll: np.ndarray) -> tuple[float, float]:
    """(first epoch of the span, nats per doubling of the epochs) over the last doubling, or all points if shorter."""
    last = float(epochs[-1])
    start = max(last / 2, float(epochs[0]))
    if start >= last:
        raise SystemExit("learning_curve: the pace needs points at two or more epochs")
    return start, (float(nll[-1]) - float(np.interp(start, epochs, nll))) / np.log2(last / start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--train-size", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--from-epoch", type=float, default=5.0)
    parser.add_argument("--at", default="60,100,200,1100")
    parser.add_argument("--exponent", type=float, help="fix the power law's c instead of fitting it")
    args = parser.parse_args()
    if args.exponent is not None and not 0 < args.exponent <= 3:
        parser.error(f"--exponent must lie in (0, 3], got {args.exponent:g}")
    epochs, nll = read_curve(args.logs, args.batch, args.train_size)
    used = epochs >= args.from_epoch
    if used.sum() < 3:
        parser.error(f"{int(used.sum())} evaluation point(s) at epochs >= {args.from_epoch:g}; the fit needs 3")
    a, b, c, rms = fit_power_law(epochs[used], nll[used], args.exponent)
    print("| epoch | validation NLL | fit |\n|---|---|---|")
    for e, value in zip(epochs, nll):
        fitted = f"{a + b * e ** (-c):.1f}" if e >= args.from_epoch else ""
        print(f"| {e:.1f} | {value:.1f} | {fitted} |")
    fixed = " (c fixed)" if args.exponent is not None else ""
    print(f"\nfit over epochs >= {args.from_epoch:g} ({int(used.sum())} points): NLL = {a:.1f} + {b:.1f} E^-{c:.2f}"
          f"{fixed} (rms residual {rms:.2f} nats)")
    last = float(epochs[-1])
    start, per_doubling = pace_per_doubling(epochs, nll)
    print(f"pace over epochs {start:.1f} -> {last:.1f}: {per_doubling:+.1f} nats per doubling of the epochs")
    for e in (float(x) for x in args.at.split(",")):
        log_linear = float(nll[-1]) + per_doubling * np.log2(e / last)
        print(f"  at {e:g} epochs: {a + b * e ** (-c):.1f} (power law), {log_linear:.1f} (the last doubling's pace "
              "kept per doubling)")


if __name__ == "__main__":
    main()
