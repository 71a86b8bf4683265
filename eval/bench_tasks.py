"""Benchmark tasks run in a child process by eval/code_versions.py, under whichever molgen is on PYTHONPATH.

Written against both APIs, so one task measures both versions: 860b5b7's (`molgen.train.checkpoint.load_denoiser`,
`molgen.sampling.load_model` and `generate(loaded, settings, path)`) and today's (`molgen.checkpoint.load_model`,
`molgen.sampling.load_for_sampling` and `generate(loaded, settings)`). Precision: 860b5b7 kept it in the model
config (`autocast_bf16`); today it is the model's run-time `autocast_dtype`.
    python eval/bench_tasks.py train '{"checkpoint": "...", "precision": "fp32", "threads": 2, "steps": 8}'
    python eval/bench_tasks.py sample '{"checkpoint": "...", "precision": "bf16", "molecules": 100, ...}'
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch


def set_precision(model: torch.nn.Module, precision: str) -> None:
    """fp32 or bf16 under either version; 'default' leaves the checkpoint's own setting."""
    if precision == "default":
        return
    if hasattr(model, "autocast_dtype"):
        model.autocast_dtype = torch.bfloat16 if precision == "bf16" else None
    else:
        model.config = dataclasses.replace(model.config, autocast_bf16=precision == "bf16")


def precision_of(model: torch.nn.Module) -> str:
    if hasattr(model, "autocast_dtype"):
        return "bf16" if model.autocast_dtype == torch.bfloat16 else "fp32"
    return "bf16" if model.config.autocast_bf16 else "fp32"


def cpu_label() -> str:
    flags = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    isa = torch.backends.cpu.get_cpu_capability()
    if flags.get("avx512_f") and not isa.startswith("AVX512"):
        return "AVX2 (emulated)"
    if flags.get("avx512_bf16") or flags.get("amx_bf16"):
        return "AVX-512 bf16" + ("+AMX" if flags.get("amx_bf16") else "")
    return "AVX-512 (no bf16)" if flags.get("avx512_f") else isa


def load_checkpoint_model(path: str):
    """The checkpoint's EMA denoiser, schedule and p(N), through either version's loading function (told apart by
    the files of the molgen on PYTHONPATH: an import of a missing module could be served by an editable install)."""
    import molgen

    if (Path(molgen.__file__).parent / "train" / "checkpoint.py").is_file():
        from molgen.train.checkpoint import load_denoiser

        return load_denoiser(path)
    from molgen.checkpoint import load_model

    return load_model(path)


def sampling_api():
    """(load, generate) with today's signatures: load(path, settings) and generate(loaded, settings, progress)."""
    import molgen.sampling as sampling

    if hasattr(sampling, "load_for_sampling"):
        return sampling.load_for_sampling, sampling.generate

    def generate(loaded, settings, progress=False):
        return sampling.generate(loaded, settings, None, progress=progress)

    return sampling.load_model, generate


def train(options: dict) -> dict:
    """Training steps of the checkpoint's denoiser: size-bucketed batches of 64 QM9 training molecules, EDM's
    l2 loss, backward, AdamW (amsgrad); one untimed warm-up step."""
    from molgen.data.qm9 import QM9Dataset
    from molgen.data.sampler import SizeBucketBatchSampler
    from molgen.diffusion import diffusion_loss

    torch.set_num_threads(options["threads"])
    loaded = load_checkpoint_model(options["checkpoint"])
    model = loaded.model.train()
    set_precision(model, options["precision"])
    dataset = QM9Dataset("train")
    epoch = SizeBucketBatchSampler(dataset.num_atoms, batch_size=64, seed=0).epoch(0)
    batches = [dataset.batch(indices) for indices in epoch[: options["steps"] + 1]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, amsgrad=True)
    generator = torch.Generator().manual_seed(0)

    def step(batch) -> None:
        loss = diffusion_loss(model, loaded.schedule, batch, generator=generator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    seconds = time.perf_counter() - start
    molecules = sum(batch.num_molecules for batch in batches[1:])
    return {"molecules_per_second": molecules / seconds, "seconds": seconds, "precision": precision_of(model),
            "cpu": cpu_label(), "threads": torch.get_num_threads()}


def sample(options: dict) -> dict:
    """`molecules` molecules with the ancestral sampler on `steps` strided steps, batch `batch_size`, through
    molgen's own sampling driver (atom counts from the checkpoint's histogram, seed 0)."""
    from molgen.sampling import SampleSettings

    torch.set_num_threads(options["threads"])
    known = {f.name for f in dataclasses.fields(SampleSettings)}
    values = {"num_molecules": options["molecules"], "sampler": "ancestral", "steps": options["steps"], "seed": 0,
              "batch_size": options["batch_size"], "device": "cpu", "precision": options["precision"],
              "threads": options["threads"]}
    if values["precision"] == "default":
        values["precision"] = "auto"
    settings = SampleSettings(**{k: v for k, v in values.items() if k in known})
    load, generate = sampling_api()
    loaded = load(options["checkpoint"], settings)
    set_precision(loaded.model, options["precision"])
    samples = generate(loaded, settings, progress=False)
    return {"seconds": samples.seconds, "molecules_per_second": options["molecules"] / samples.seconds,
            "precision": precision_of(loaded.model), "cpu": cpu_label(), "threads": torch.get_num_threads()}


def throughput(options: dict) -> dict:
    """Molecules per second of repeated `sample` calls (`molecules` x `steps`) over `seconds` of wall time,
    with molgen's own thread choice unless `threads` is given (today's code only)."""
    from molgen.sampling import SampleSettings

    settings = SampleSettings(num_molecules=options["molecules"], sampler="ancestral", steps=options["steps"],
                              batch_size=options["molecules"], device="cpu", precision=options["precision"],
                              threads=options.get("threads"))
    load, generate = sampling_api()
    loaded = load(options["checkpoint"], settings)
    generate(loaded, settings, progress=False)  # warm-up
    molecules, start = 0, time.perf_counter()
    while time.perf_counter() - start < options["seconds"]:
        generate(loaded, settings, progress=False)
        molecules += options["molecules"]
    return {"molecules_per_second": molecules / (time.perf_counter() - start), "threads": torch.get_num_threads(),
            "precision": precision_of(loaded.model), "cpu": cpu_label()}


if __name__ == "__main__":
    task, options = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"train": train, "sample": sample, "throughput": throughput}[task](options)))
