"""How far PONITA is from exact rotation/reflection symmetry when only the input turns (the grid is fixed).

For each number of orientations O, a freshly initialised default-width PONITA (float64) is applied to 64
QM9 validation molecules at noise levels t in {0.1, 0.5, 0.9} (z_t = alpha_t x + sigma_t eps), and to the
same inputs rotated (or reflected) by 8 random orthogonal matrices. Prints the relative errors
‖f(Qz) - Q f(z)‖ / ‖f(z)‖ for eps_x (equivariant) and ‖g(Qz) - g(z)‖ / ‖g(z)‖ for eps_h (invariant).
With the grid turned along (Q·grid) both are exact to float64 rounding (the tests assert it).

Usage: python eval/ponita_equivariance.py [--orientations 8,12,16,32]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from molgen.data.qm9 import QM9Dataset
from molgen.diffusion import PolynomialSchedule
from molgen.diffusion.process import batch_to_state, noise_state, sample_noise
from molgen.models.ponita import Ponita, PonitaConfig


def orthogonal(seed: int) -> torch.Tensor:
    """A random rotation, made a reflection for odd seeds."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.det(q))
    return q @ torch.diag(torch.tensor([1.0, 1.0, -1.0 if seed % 2 else 1.0], dtype=torch.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orientations", default="8,12,16,32")
    args = parser.parse_args()
    batch = QM9Dataset("valid", dtype=torch.float64).batch(range(64))
    schedule = PolynomialSchedule()
    x, h = batch_to_state(batch)
    print("| O | t | eps_x relative error | eps_h relative error |\n|---|---|---|---|")
    for o in (int(v) for v in args.orientations.split(",")):
        torch.manual_seed(0)
        model = Ponita(replace(PonitaConfig(), orientations=o)).double().eval()
        for t in (0.1, 0.5, 0.9):
            t_int = torch.full((batch.num_molecules,), round(t * 1000))
            eps_x, eps_h = sample_noise(batch.layout, torch.float64, generator=torch.Generator().manual_seed(1))
            z_x, z_h = noise_state(x, h, schedule.gamma_at(t_int), eps_x, eps_h, batch.layout)
            tt = t_int.double() / 1000
            with torch.no_grad():
                out_x, out_h = model(z_x, z_h, tt, batch.layout)
                errors_x, errors_h = [], []
                for seed in range(8):
                    q = orthogonal(seed)
                    rx, rh = model(z_x @ q.T, z_h, tt, batch.layout)
                    errors_x.append(float((rx - out_x @ q.T).norm() / out_x.norm()))
                    errors_h.append(float((rh - out_h).norm() / out_h.norm()))
            print(f"| {o} | {t} | {sum(errors_x) / 8:.3f} | {sum(errors_h) / 8:.4f} |", flush=True)


if __name__ == "__main__":
    main()
