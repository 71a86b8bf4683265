"""EDM's evaluation protocol for a checkpoint, printed in the papers' table format next to EDM's row.

For each row SAMPLER:STEPS:N[:CHURN], N molecules are sampled (EMA weights, seed 0; CHURN: Heun's S_churn, default
0) and scored with EDM's metrics (95%
Wilson intervals in parentheses, novelty against EDM's training SMILES); the test-split NLL (EDM's definition,
`--nll-passes` passes) is computed once per checkpoint. Seconds per molecule are wall time of the sampling alone
on this machine with the threads given.

Usage: python eval/evaluate_checkpoint.py [--checkpoint PATH] [--rows ancestral:1000:1000,heun:20:10000,heun:20:500:5]
       [--nll-passes 1] [--threads 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from molgen.chem.reference import training_smiles
from molgen.data.qm9 import QM9Dataset
from molgen.evaluation import intervals, test_split_nll
from molgen.sampling import SampleSettings, generate, load_for_sampling

PUBLISHED = [  # FACTS.md: QM9, 10,000 samples
    ("data", "–", "–", "99.0", "95.2", "97.7", "97.7"),
    ("EDM (Hoogeboom et al. 2022)", "1000", "−110.7", "98.7", "82.0", "91.9", "90.7"),
]


def parse_rows(text: str) -> list[tuple[str, int, int, float]]:
    """SAMPLER:STEPS:N[:CHURN] items, comma-separated -> (sampler, steps, N, churn)."""
    rows = []
    for item in text.split(","):
        sampler, steps, count, *churn = item.split(":")
        rows.append((sampler, int(steps), int(count), float(churn[0]) if churn else 0.0))
    return rows


def cell(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "–"
    if interval is None:
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ({100 * interval[0]:.1f}–{100 * interval[1]:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--rows", default="ancestral:1000:1000,heun:20:10000")
    parser.add_argument("--nll-passes", type=int, default=1, help="0 skips the NLL")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also append the table (and JSON beside it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_for_sampling(args.checkpoint, SampleSettings(device="cpu"))
    path = loaded.path
    reference = training_smiles(QM9Dataset("train"))
    start = time.perf_counter()
    nll = test_split_nll(loaded, passes=args.nll_passes, batch_size=args.batch_size) if args.nll_passes else None
    nll_text = "–" if nll is None else f"{nll.mean:.1f} ± {nll.standard_error:.1f}"
    nll_seconds = time.perf_counter() - start
    header = ("| system | sampler | steps | samples | NLL | atom % | mol % | valid % | V×U % | novelty % | s / molecule |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header] + [f"| {name} | {'ancestral' if steps != '–' else '–'} | {steps} | "
                        f"{'10,000' if steps != '–' else '–'} | {n} | {a} | {m} | {v} | {vu} | – | – |"
                        for name, steps, n, a, m, v, vu in PUBLISHED]
    print(header, flush=True)
    records = []
    for sampler, steps, count, churn in parse_rows(args.rows):
        settings = SampleSettings(num_molecules=count, sampler=sampler, steps=steps, batch_size=args.batch_size,
                                  device="cpu", churn=churn)
        samples = generate(loaded, settings, progress=True)
        metrics = samples.metrics(reference)
        bounds = intervals(metrics)
        name = sampler if not churn else f"{sampler}, churn {churn:g}"
        line = (f"| molgen PONITA (step {loaded.step:,}) | {name} | {steps} | {count:,} | {nll_text} | "
                + " | ".join(cell(getattr(metrics, name), bounds.get(name))
                             for name in ("atom_stable", "mol_stable", "validity", "valid_and_unique", "novelty"))
                + f" | {samples.seconds_per_molecule:.3f} |")
        print(line, flush=True)
        lines.append(line)
        records.append({"settings": asdict(settings), "seconds": samples.seconds, **metrics.to_dict(),
                        "intervals_95": {k: list(v) for k, v in bounds.items()}})
    if args.out is not None:
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
        title = (f"Checkpoint {path} (step {loaded.step:,}), EMA weights, seed 0; test NLL: {args.nll_passes} "
                 f"pass(es) over the 13,083 test molecules ({nll_seconds:.0f} s); {machine}.")
        with open(args.out, "a") as handle:
            handle.write("\n".join([title, "", *lines]) + "\n\n")
        payload = {"checkpoint": str(path), "step": loaded.step, "rows": records,
                   "test_nll": None if nll is None else nll._asdict()}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
