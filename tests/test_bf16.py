"""bf16 is really applied: the network's layers compute in bf16 under autocast, and the outputs move by more than
float noise. Explicit `bf16` works on every CPU (emulated where not native); `auto` picks it only where native."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from molgen.batch import MoleculeLayout
from molgen.checkpoint import load_model
from molgen.geometry.centroid import remove_centroid
from molgen.models.egnn import EGNN, EGNNConfig
from molgen.precision import native_bf16, set_precision
from molgen.sampling import SampleSettings, generate, load_for_sampling

FIXTURE = Path(__file__).parent / "fixtures" / "qm9_ponita_860b5b7.pt"
CPU = torch.device("cpu")


class LinearDtypes:
    """Records, for every call of an nn.Linear inside `model`, its output dtype and whether CPU autocast was on."""

    def __init__(self, model: nn.Module) -> None:
        self.seen: list[tuple[torch.dtype, bool]] = []
        self.handles = [module.register_forward_hook(self._record) for module in model.modules()
                        if isinstance(module, nn.Linear)]
        assert self.handles, "the model has no Linear layer to watch"

    def _record(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self.seen.append((output.dtype, torch.is_autocast_enabled("cpu")))

    def dtypes(self) -> set[tuple[torch.dtype, bool]]:
        """The (dtype, autocast on) pairs seen since the last call, then forget them."""
        seen, self.seen = set(self.seen), []
        assert seen, "no Linear layer ran"
        return seen


def _noisy_molecules(seed: int = 0) -> tuple:
    """Denoiser inputs of 4 molecules of 9 to 25 atoms: z_x [M, 3] centroid-free, z_h [M, 6], t [B], layout."""
    generator = torch.Generator().manual_seed(seed)
    layout = MoleculeLayout.from_num_atoms(torch.tensor([9, 18, 19, 25]))
    m, b = layout.batch.numel(), layout.num_molecules
    z_x = remove_centroid(torch.randn(m, 3, generator=generator), layout.batch, b)  # [M, 3]
    z_h = torch.randn(m, 6, generator=generator)  # [M, 6]
    return z_x, z_h, torch.tensor([0.02, 0.3, 0.6, 0.95]), layout


def _ponita() -> nn.Module:
    return load_model(FIXTURE).model


def _egnn() -> nn.Module:
    torch.manual_seed(0)
    return EGNN(EGNNConfig(hidden=32, layers=3))


@pytest.mark.parametrize("build", [_ponita, _egnn], ids=["ponita", "egnn"])
def test_bf16_runs_the_layers_under_autocast_and_moves_the_outputs(build):
    """Every Linear computes in bf16 under CPU autocast (fp32 without), and bf16 moves the outputs at least 100x
    further from the float64 result than fp32 does (measured: ~1e4x; PONITA 7e-3 and 2.5e-3, fp32 4e-7 and 1e-7)."""
    model = build()
    inputs = _noisy_molecules()
    exact_model = copy.deepcopy(model).double()
    watch = LinearDtypes(model)
    outputs = {}
    with torch.inference_mode():
        exact = exact_model(*(v.double() if torch.is_tensor(v) else v for v in inputs))
        for precision, expected in (("fp32", {(torch.float32, False)}), ("bf16", {(torch.bfloat16, True)})):
            set_precision(model, precision)
            outputs[precision] = model(*inputs)
            assert watch.dtypes() == expected, precision
    for name, reference, fp32, bf16 in zip(("eps_x", "eps_h"), exact, outputs["fp32"], outputs["bf16"]):
        assert fp32.dtype == bf16.dtype == torch.float32
        fp32_error = ((fp32.double() - reference).norm() / reference.norm()).item()
        bf16_error = ((bf16.double() - reference).norm() / reference.norm()).item()
        assert bf16_error > max(100 * fp32_error, 5e-4), (name, fp32_error, bf16_error)
        assert bf16_error < 0.05, (name, bf16_error)


def _sampled(precision: str) -> tuple[set, list]:
    """The (dtype, autocast) pairs the Linear layers saw while sampling 2 molecules in `precision`, and the
    molecules."""
    settings = SampleSettings(num_molecules=2, steps=3, seed=0, device="cpu", precision=precision, threads=1)
    loaded = load_for_sampling(FIXTURE, settings)
    watch = LinearDtypes(loaded.model)
    samples = generate(loaded, settings, progress=False)
    assert samples.compute.endswith(", " + ("bf16" if (torch.bfloat16, True) in watch.seen else "fp32"))
    return watch.dtypes(), samples.molecules


def test_sampling_runs_the_network_in_the_precision_asked():
    bf16_seen, bf16 = _sampled("bf16")
    fp32_seen, fp32 = _sampled("fp32")
    assert bf16_seen == {(torch.bfloat16, True)} and fp32_seen == {(torch.float32, False)}
    native = native_bf16(CPU)
    assert _sampled("auto")[0] == (bf16_seen if native else fp32_seen)  # auto: bf16 only where native
    gaps = [float(np.abs(a - b).max()) for (a, _), (b, _) in zip(bf16, fp32)]
    assert min(gaps) > 1e-4, gaps  # Å; fp32 twice gives 0


def test_training_steps_run_in_bf16(tmp_path):
    from molgen.train.loop import Trainer
    from tests.train.helpers import ToyMolecules, tiny_config

    trainer = Trainer(tiny_config(tmp_path / "run", max_steps=1, precision="bf16"), ToyMolecules(count=16))
    watch = LinearDtypes(trainer.model)
    trainer.run()
    assert trainer.step == 1 and watch.dtypes() == {(torch.bfloat16, True)}
