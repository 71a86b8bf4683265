"""Where a checkpoint loses its NLL: the diffusion term of EDM's bound split by step t and into positions and
features (atom types + charges), at fixed t and integrated over t ranges.

The bound's diffusion part is sum_{t=1..T} L_t; `variational_nll` estimates it by T * L_t at one random t. Here
T * L_t is evaluated per molecule (fp32 inference, the checkpoint's EMA unless --trained) on the first
`--molecules` validation molecules with one noise draw per molecule (seed `--seed`), reused at every t and for
every checkpoint, so that differences between checkpoints are paired:
  - the fixed-t table: T * L_t at each of `--t-values`, and the eps-MSE per position coordinate
    (||eps_x - eps_hat_x||^2 / 3N, about (N - 1)/N = 0.95 for predicting zero);
  - the range table: sum of L_t over t <= 20, 20 < t <= 100, 100 < t <= 300 and t > 300 (`--ranges`). A range
    with at most `--strata` steps is summed exactly; a larger one is cut into `--strata` equal strata, each
    molecule draws its own t uniformly in every stratum, and the stratum counts n_j weight the terms:
    sum_j n_j L_{t_j}, an unbiased stratified estimate. The standard errors are over molecules, so they include
    the noise and the t sampling.
With two checkpoints the tables give each and the paired difference (second - first) ± standard error.

    python eval/nll_by_t.py --checkpoint checkpoints/qm9_ponita_cpu.pt --molecules 1000 --out eval/nll_by_t.md
    python eval/nll_by_t.py --checkpoint runs/branches/baseline/last.pt --checkpoint runs/branches/deep8/last.pt
"""

from __future__ import annotations

import argparse
import hashlib
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from molgen.batch import MoleculeBatch, size_batches
from molgen.checkpoint import load_model
from molgen.data.qm9 import QM9Dataset
from molgen.diffusion.likelihood import diffusion_terms_at
from molgen.diffusion.process import Denoiser, sample_noise
from molgen.diffusion.schedule import NoiseSchedule
from molgen.errors import MolgenError


@dataclass(frozen=True)
class Stratum:
    """Steps low..high (inclusive); each molecule draws one t uniformly among them."""

    low: int
    high: int

    @property
    def size(self) -> int:
        return self.high - self.low + 1


def range_bounds(cuts: list[int], timesteps: int) -> list[tuple[int, int]]:
    """The t ranges (low, high) inclusive: 1..c1, c1+1..c2, ..., c_k+1..T."""
    edges = [0, *[c for c in cuts if 0 < c < timesteps], timesteps]
    return [(a + 1, b) for a, b in zip(edges[:-1], edges[1:])]


def strata(low: int, high: int, count: int) -> list[Stratum]:
    """`count` near-equal strata of low..high, or one per step when the range has at most `count` steps."""
    size = high - low + 1
    if size <= count:
        return [Stratum(t, t) for t in range(low, high + 1)]
    edges = [low + (size * j) // count for j in range(count + 1)]
    return [Stratum(a, b - 1) for a, b in zip(edges[:-1], edges[1:])]


def evaluate_strata(denoiser: Denoiser, schedule: NoiseSchedule, batches: list[MoleculeBatch],
                    columns: list[Stratum], seed: int) -> tuple[Tensor, Tensor]:
    """T * L_t of positions and features for every molecule and stratum, float64 [n, S] each.

    Each batch draws its noise (one eps per molecule, reused for every stratum) and then a t per molecule and
    stratum, from generators seeded with `seed`, so every checkpoint sees the same draws."""
    noise_generator, t_generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    out_x, out_h = [], []
    for batch in batches:
        noise = sample_noise(batch.layout, torch.float64, "cpu", noise_generator)  # [M, 3], [M, 6]
        steps = [torch.randint(s.low, s.high + 1, (batch.num_molecules,), generator=t_generator)
                 for s in columns]  # S x [B]
        with torch.inference_mode():
            terms = [diffusion_terms_at(denoiser, schedule, batch, t_int, noise) for t_int in steps]
        out_x.append(torch.stack([x for x, _ in terms], dim=1))  # [B, S]
        out_h.append(torch.stack([h for _, h in terms], dim=1))  # [B, S]
    return torch.cat(out_x), torch.cat(out_h)  # [n, S], [n, S]


def range_sums(terms: Tensor, columns: list[Stratum], ranges: list[list[Stratum]], timesteps: int) -> Tensor:
    """sum_j n_j L_{t_j} per molecule and range, [n, R], from T * L_t per stratum `terms` [n, S]."""
    index = {stratum: j for j, stratum in enumerate(columns)}
    sums = [sum(terms[:, index[s]] * s.size for s in strata_of_range) / timesteps for strata_of_range in ranges]
    return torch.stack(sums, dim=1)  # [n, R]


def position_mse(terms_x: Tensor, t: int, schedule: NoiseSchedule, num_atoms: Tensor) -> Tensor:
    """||eps_x - eps_hat_x||^2 / 3N per molecule [n], from T * L_t of the positions [n] (T * 1/2 expm1(g_t - g_s)
    times the squared error)."""
    gamma = schedule.gamma_table.to(torch.float64)
    weight = schedule.timesteps * 0.5 * torch.expm1(gamma[t] - gamma[t - 1])
    return terms_x / weight / (3 * num_atoms.to(torch.float64))  # [n]


def mean_se(values: Tensor, digits: int = 2) -> str:
    """'mean ± standard error' over molecules."""
    se = float(values.std(unbiased=True)) / math.sqrt(values.numel()) if values.numel() > 1 else float("nan")
    return f"{float(values.mean()):.{digits}f} ± {se:.{digits}f}"


def study(path: Path, batches: list[MoleculeBatch], args: argparse.Namespace) -> dict[str, Tensor | int]:
    """One checkpoint's per-molecule terms: fixed-t terms and MSE, range sums ([n, *] tensors)."""
    loaded = load_model(path, use_ema=not args.trained)
    loaded.model.float()
    schedule = loaded.schedule
    bounds = range_bounds(args.ranges, schedule.timesteps)
    ranges = [strata(low, high, args.strata) for low, high in bounds]
    fixed = [Stratum(t, t) for t in args.t_values if 1 <= t <= schedule.timesteps]
    columns = list(dict.fromkeys([*fixed, *[s for r in ranges for s in r]]))
    terms_x, terms_h = evaluate_strata(loaded.model, schedule, batches, columns, args.seed)  # [n, S] each
    num_atoms = torch.cat([b.num_atoms for b in batches])  # [n]
    index = {s: j for j, s in enumerate(columns)}
    return {
        "timesteps": schedule.timesteps, "bounds": bounds, "strata": ranges, "fixed": [s.low for s in fixed],
        "fixed_x": torch.stack([terms_x[:, index[s]] for s in fixed], 1),  # [n, F]
        "fixed_h": torch.stack([terms_h[:, index[s]] for s in fixed], 1),  # [n, F]
        "mse": torch.stack([position_mse(terms_x[:, index[s]], s.low, schedule, num_atoms) for s in fixed], 1),
        "range_x": range_sums(terms_x, columns, ranges, schedule.timesteps),  # [n, R]
        "range_h": range_sums(terms_h, columns, ranges, schedule.timesteps),  # [n, R]
    }


def range_label(low: int, high: int) -> str:
    return f"t = {low}" if low == high else f"{low} ≤ t ≤ {high}"


def range_table(results: list[dict]) -> str:
    """Markdown: the sum of L_t over each range, positions and features, per checkpoint and paired difference."""
    first = results[0]
    header = "| t range | steps | t's per molecule |" + "".join(
        f" {name}positions | {name}features |" for name in _names(results))
    lines = [header, "|" + "---|" * (3 + 2 * len(_names(results)))]
    count = len(first["bounds"])
    for r in range(count + 1):  # the last row: all ranges together, the bound's diffusion part
        pick = (lambda key, res: res[key][:, r]) if r < count else (lambda key, res: res[key].sum(1))
        low, high = first["bounds"][r] if r < count else (1, first["timesteps"])
        evaluated = len(first["strata"][r]) if r < count else sum(len(s) for s in first["strata"])
        label = range_label(low, high) if r < count else f"all (1 ≤ t ≤ {high})"
        cells = [mean_se(pick(key, res)) for res in results for key in ("range_x", "range_h")]
        if len(results) == 2:
            cells += [mean_se(pick(key, results[1]) - pick(key, results[0])) for key in ("range_x", "range_h")]
        lines.append(f"| {label} | {high - low + 1} | {evaluated} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fixed_table(results: list[dict]) -> str:
    """Markdown: T * L_t of positions and features and the position eps-MSE at each fixed t."""
    names = _names(results)
    header = "| t |" + "".join(f" {n}T·L_t positions | {n}T·L_t features | {n}ε-MSE per coordinate |"
                                for n in names)
    lines = [header, "|" + "---|" * (1 + 3 * len(names))]
    for f, t in enumerate(results[0]["fixed"]):
        cells = [mean_se(res[key][:, f], 3 if key == "mse" else 2)
                 for res in results for key in ("fixed_x", "fixed_h", "mse")]
        if len(results) == 2:
            cells += [mean_se(results[1][key][:, f] - results[0][key][:, f], 3 if key == "mse" else 2)
                      for key in ("fixed_x", "fixed_h", "mse")]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _names(results: list[dict]) -> list[str]:
    """Column names: the checkpoint alone; or A, B and the paired difference B − A."""
    return [""] if len(results) == 1 else ["A ", "B ", "B − A "]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else the platform's machine type)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def parse_ints(text: str) -> list[int]:
    """'1,10,100' -> [1, 10, 100]; argparse reports a bad value as one line."""
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True,
                        help="once, or twice for the paired difference (second - first)")
    parser.add_argument("--molecules", type=int, default=1000, help="the first N validation molecules")
    parser.add_argument("--t-values", type=parse_ints, default=parse_ints("1,2,5,10,20,50,100,300,600,1000"))
    parser.add_argument("--ranges", type=parse_ints, default=parse_ints("20,100,300"), help="range cuts")
    parser.add_argument("--strata", type=int, default=20, help="strata per range (a shorter range is exact)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trained", action="store_true", help="the trained weights instead of the EMA")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    if len(args.checkpoint) > 2 or args.molecules < 2 or args.strata < 1 or args.batch_size < 1:
        parser.error("give one or two --checkpoint, --molecules >= 2, --strata >= 1 and --batch-size >= 1")
    for path in args.checkpoint:
        if not path.is_file():
            parser.error(f"no checkpoint file {path}")
    return args


def report(args: argparse.Namespace, results: list[dict], count: int) -> str:
    """The heading lines and both tables."""
    names = "; ".join(f"{'AB'[i] + ': ' if len(results) == 2 else ''}{p} (sha256 {sha256(p)})"
                      for i, p in enumerate(args.checkpoint))
    weights = "trained weights" if args.trained else "EMA weights"
    head = (f"{names}; {weights}, fp32 inference; the first {count} validation molecules, noise seed {args.seed}; "
            f"{cpu_name()}, {args.threads} thread(s).")
    return (f"{head}\n\nSum of L_t over each t range (nats per molecule; the last row is the bound's diffusion "
            f"part):\n\n{range_table(results)}\n\nT·L_t at fixed t (nats per molecule) and the ε-MSE per position coordinate "
            f"(predicting zero gives about 0.95):\n\n{fixed_table(results)}")


def fail(message: str) -> None:
    """One error line on stderr, exit status 2."""
    print(f"nll_by_t: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    valid = QM9Dataset("valid")
    count = min(args.molecules, len(valid))
    batches = [valid.batch(chunk) for chunk in size_batches(valid.num_atoms[:count], args.batch_size)]
    try:
        results = [study(path, batches, args) for path in args.checkpoint]
    except MolgenError as err:
        fail(str(err))
    if len({res["timesteps"] for res in results}) != 1:
        fail("the two checkpoints have different numbers of diffusion steps T; no paired table")
    text = report(args, results, count)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
