"""Precision as a run-time choice, and the checkpoint of commit 860b5b7 (trained in bf16) in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from molgen.batch import MoleculeBatch
from molgen.checkpoint import load_checkpoint, load_model
from molgen.config import RunConfig
from molgen.errors import MolgenError
from molgen.geometry.centroid import remove_centroid
from molgen.precision import cpu_kind, model_precision, resolve_precision, set_precision

FIXTURE = Path(__file__).parent / "fixtures" / "qm9_ponita_860b5b7.pt"
CPU = torch.device("cpu")
ZEN3 = {"avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_bf16": False}
ZEN4_NO_BF16 = {"avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}


@pytest.mark.parametrize(("flags", "expected"), [
    (ZEN3, "fp32"),
    (ZEN4_NO_BF16, "fp32"),
    ({**ZEN4_NO_BF16, "avx512_bf16": True}, "bf16"),
    ({**ZEN4_NO_BF16, "amx_bf16": True}, "bf16"),
    ({}, "fp32"),
])
def test_auto_is_bf16_only_where_the_cpu_has_it_natively(flags, expected):
    assert resolve_precision("auto", CPU, capabilities=lambda: flags) == expected
    for explicit in ("fp32", "bf16"):
        assert resolve_precision(explicit, CPU, capabilities=lambda: flags) == explicit


def test_cuda_asks_torch(monkeypatch):
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert resolve_precision("auto", torch.device("cuda"), capabilities=lambda: {}) == expected


def test_cpu_kind_labels():
    assert cpu_kind(lambda: ZEN3) == "AVX2"
    assert cpu_kind(lambda: ZEN4_NO_BF16) == "AVX-512 (no bf16)"
    assert cpu_kind(lambda: {**ZEN4_NO_BF16, "avx512_bf16": True}) == "AVX-512 bf16"
    assert cpu_kind(lambda: {**ZEN4_NO_BF16, "avx512_bf16": True, "amx_bf16": True}) == "AVX-512 bf16+AMX"
    assert cpu_kind(lambda: {"emulated": True, "avx2": True}) == "AVX2 (emulated)"


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(MolgenError, match=r"unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match=r"train\.precision must be one of"):
        RunConfig.from_dict({"train": {"precision": "half"}})
    with pytest.raises(ValueError, match=r"autocast_bf16 is no longer a model setting"):
        RunConfig.from_dict({"model": {"name": "ponita", "config": {"autocast_bf16": True}}})


def _noisy_molecules(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    counts = torch.tensor([9, 18, 19, 25])
    batch = MoleculeBatch.from_arrays(torch.zeros(int(counts.sum()), 3), torch.zeros(int(counts.sum()),
                                      dtype=torch.int64), counts)
    layout = batch.layout
    z_x = remove_centroid(torch.randn(len(batch.x), 3, generator=generator), layout.batch, len(counts))  # [M, 3]
    z_h = torch.randn(len(batch.x), 6, generator=generator)  # [M, 6]
    t = torch.tensor([0.02, 0.3, 0.6, 0.95])  # [B]
    return z_x, z_h, t, layout


def test_the_860b5b7_checkpoint_migrates_out_of_the_model_config():
    payload = load_checkpoint(FIXTURE)
    assert "autocast_bf16" not in payload["config"]["model"]["config"]
    assert payload["config"]["train"]["precision"] == "auto"


def test_fp32_and_bf16_outputs_of_the_shipped_model_agree():
    """bf16 autocast changes the 860b5b7 model's noise prediction by about 1% (positions) and 0.3% (features)."""
    model = load_model(FIXTURE).model
    inputs = _noisy_molecules()
    with torch.inference_mode():
        set_precision(model, "fp32")
        reference = model(*inputs)
        set_precision(model, "bf16")
        fast = model(*inputs)
    for exact, approximate in zip(reference, fast):
        assert approximate.dtype == torch.float32
        assert ((approximate - exact).norm() / exact.norm()).item() < 0.03


def test_the_860b5b7_checkpoint_samples_in_fp32():
    """sample_molecules in fp32 gives exactly the default sampler's molecules from the checkpoint's EMA weights run
    without autocast, for the seed's atom counts (its EMA differs from its raw weights by up to 0.14)."""
    from molgen.diffusion import atom_counts, sample
    from molgen.sampling import sample_molecules

    samples = sample_molecules(FIXTURE, num_molecules=3, steps=5, seed=3, precision="fp32", device="cpu", threads=1)
    assert samples.compute.endswith(", 1 thread, fp32")
    loaded = load_model(FIXTURE, use_ema=True)
    set_precision(loaded.model, "fp32")
    generator = torch.Generator().manual_seed(3)
    counts = atom_counts(loaded.node_distribution, 3, generator)  # [3]
    order = torch.argsort(counts, stable=True)  # the batch is drawn sorted by size
    with torch.inference_mode():
        expected = sample(loaded.model, loaded.schedule, counts[order], steps=5, generator=generator).molecules()
    assert len(samples.molecules) == 3
    for index, (positions, types) in zip(order.tolist(), expected):
        got_positions, got_types = samples.molecules[index]
        assert np.array_equal(got_types, types) and np.array_equal(got_positions, positions)


def test_the_860b5b7_checkpoint_resumes_training_in_fp32(tmp_path):
    from molgen.train.loop import Trainer
    from tests.train.helpers import ToyMolecules

    payload = load_checkpoint(FIXTURE)
    values = payload["config"]
    values["train"] = {**values["train"], "precision": "fp32", "max_steps": payload["step"] + 2,
                       "device": "cpu", "threads": 1, "log_every": 1}
    values["run_dir"] = str(tmp_path / "run")
    trainer = Trainer(RunConfig.from_dict(values), ToyMolecules(count=128))
    assert model_precision(trainer.model) == model_precision(trainer.ema.module) == "fp32"
    trainer.load_checkpoint(FIXTURE)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.run()
    assert result.step == payload["step"] + 2 and trainer.skipped_steps == payload["skipped_steps"]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert load_checkpoint(result.checkpoint)["step"] == payload["step"] + 2
