"""Sample molecules from a trained checkpoint: the Python API behind `molgen sample` and `molgen evaluate --checkpoint`.

    from molgen.sampling import sample_molecules
    samples = sample_molecules(num_molecules=20, seed=1)        # the shipped checkpoint, default sampler
    mols = samples.rdkit_molecules()                             # RDKit molecules with 3D conformers
    print(samples.metrics().format_table())

Atom counts are drawn from the checkpoint's training histogram (EDM), molecules are generated in batches of
similar size with the EMA weights, and every random draw comes from one generator seeded by `seed`: the same
seed, batch size and device give the same molecules. Nothing here needs the QM9 data package.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from molgen.batch import Molecule
from molgen.checkpoint import LoadedModel, load_denoiser
from molgen.device import resolve_device
from molgen.diffusion import sample
from molgen.diffusion.process import state_to_batch
from molgen.diffusion.samplers import StepInfo
from molgen.errors import MolgenError
from molgen.fragment import FixedSource, Fragment, check_fragment, fragment_atom_counts, load_fragment, sample_around
from molgen.precision import check_precision, describe_compute, model_precision, resolve_precision, set_precision
from molgen.threads import configure_threads

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "qm9_ponita_cpu.pt"
SAMPLERS = ("ancestral", "heun")
# The default: the best quality per second measured on the shipped checkpoint (eval/qm9_checkpoint_eval.md):
# EDM's ancestral sampler on 100 strided steps beat Heun with 10, 20 and 40 steps in stability.
DEFAULT_SAMPLER = "ancestral"
DEFAULT_STEPS = {"ancestral": 100, "heun": 20}  # EDM's protocol is ancestral with all 1000 steps



def default_checkpoint() -> Path:
    """$MOLGEN_CHECKPOINT if set, else the shipped checkpoints/qm9_ponita_cpu.pt of this source tree."""
    return Path(os.environ.get("MOLGEN_CHECKPOINT", SHIPPED_CHECKPOINT))


@dataclass(frozen=True)
class SampleSettings:
    """How to sample; `check()` turns impossible values into one clear MolgenError.

    steps None means the sampler's default (DEFAULT_STEPS); num_atoms None draws counts from p(N).
    """

    num_molecules: int = 100
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    seed: int = 0
    num_atoms: int | None = None
    batch_size: int = 100
    device: str = "auto"
    use_ema: bool = True
    precision: str = "auto"
    threads: int | None = None
    resample: int = 0  # RePaint round trips per step around a fixed fragment

    @property
    def resolved_steps(self) -> int:
        return DEFAULT_STEPS[self.sampler] if self.steps is None else self.steps

    def check(self, timesteps: int | None = None) -> None:
        """Raise MolgenError for a count < 1, an unknown sampler, too few or too many steps."""
        if self.num_molecules < 1:
            raise MolgenError(f"the number of molecules must be at least 1, got {self.num_molecules}")
        if self.batch_size < 1:
            raise MolgenError(f"the batch size must be at least 1, got {self.batch_size}")
        if self.sampler not in SAMPLERS:
            raise MolgenError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.steps is not None and self.steps < 1:
            raise MolgenError(f"the number of steps must be at least 1, got {self.steps}")
        if self.sampler == "ancestral" and timesteps is not None and self.resolved_steps > timesteps:
            raise MolgenError(f"the ancestral sampler takes at most T = {timesteps} steps, got {self.steps}")
        if self.num_atoms is not None and self.num_atoms < 1:
            raise MolgenError(f"the atom count must be at least 1, got {self.num_atoms}")
        check_precision(self.precision)
        if self.threads is not None and self.threads < 1:
            raise MolgenError(f"the thread count must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class ChainFrame:
    """One frame of the denoising chain of a molecule: the state's positions and argmax atom types at time t."""

    t: float
    positions: np.ndarray  # [N, 3]
    atom_types: np.ndarray  # [N]


@dataclass
class Samples:
    """Generated molecules with what produced them.

    Attributes:
        molecules: (positions float64 [N, 3] Å, atom types int64 [N]) per molecule, in the order drawn.
        seconds: wall time of the sampling alone (network and sampler, without scoring or files).
        chain: frames of molecule 0's denoising chain (empty unless asked for).
    """

    molecules: list[Molecule]
    settings: SampleSettings
    checkpoint: Path
    checkpoint_step: int
    seconds: float
    chain: list[ChainFrame] = field(default_factory=list)
    compute: str = ""  # the hardware, threads and precision used, e.g. "cpu (AVX2), 2 threads, fp32"
    fragment: Fragment | None = None  # the fixed atoms: the first K of every molecule, in the fragment's frame

    @property
    def seconds_per_molecule(self) -> float:
        return self.seconds / len(self.molecules)

    @cached_property
    def checks(self) -> list:
        """EDM's per-molecule stability and validity (molgen.chem.metrics.check_molecule), computed once."""
        from molgen.chem.metrics import check_molecule

        return [check_molecule(x, types) for x, types in self.molecules]

    def metrics(self, training_smiles: set[str] | None = None):
        """EDM's metrics of these molecules (novelty only with the training SMILES)."""
        from molgen.chem.metrics import Metrics

        return Metrics.from_checks(self.checks, training_smiles)

    def rdkit_molecules(self) -> list:
        """RDKit molecules with EDM's bonds and the sampled 3D conformer (sanitised where valid)."""
        from molgen.chem.draw import molecule_to_rdkit

        return [molecule_to_rdkit(x, types) for x, types in self.molecules]


def load_model(checkpoint: str | Path | None = None, settings: SampleSettings = SampleSettings()) -> LoadedModel:
    """The checkpoint's denoiser (EMA weights unless settings.use_ema is False) on the settings' device, set to
    the settings' precision (resolved for that device) and threads."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if checkpoint is None and not path.is_file():
        raise MolgenError(f"the shipped checkpoint is missing ({path}); pass a checkpoint path or set "
                          "MOLGEN_CHECKPOINT")
    device = resolve_device(settings.device)
    configure_threads(settings.threads)
    loaded = load_denoiser(path, use_ema=settings.use_ema, device=device)
    set_precision(loaded.model, resolve_precision(settings.precision, device))
    return loaded


def atom_counts(loaded: LoadedModel, settings: SampleSettings, generator: torch.Generator) -> torch.Tensor:
    """The atom count of every molecule, int64 [num_molecules]: drawn from p(N), or the one count asked for."""
    if settings.num_atoms is None:
        return loaded.node_distribution.sample(settings.num_molecules, generator).cpu()  # [B]
    counts = torch.full((settings.num_molecules,), settings.num_atoms, dtype=torch.int64)  # [B]
    try:
        loaded.node_distribution.check_supported(counts[:1])
    except ValueError as err:
        raise MolgenError(f"cannot sample molecules of {settings.num_atoms} atoms: {err}") from None
    return counts


def size_batches(counts: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Indices into counts [B] grouped into batches of similar size (sorted by count, stable), for less padding."""
    return list(torch.split(torch.argsort(counts, stable=True), batch_size))


class _ChainRecorder:
    """A sampler callback keeping `frames - 1` evenly spaced states of molecule 0 in output order (the sample
    completes the chain); it watches the batch `batch_number`, in which that molecule is at `position`."""

    def __init__(self, frames: int, batches: Sequence[torch.Tensor]) -> None:
        self.frames = frames
        self.kept: list[ChainFrame] = []
        self.batch_number = next(number for number, indices in enumerate(batches) if bool((indices == 0).any()))
        self.position = int((batches[self.batch_number] == 0).nonzero()[0])

    def __call__(self, info: StepInfo) -> None:
        kept = self.frames - 1
        wanted = {(k * info.num_steps) // kept for k in range(kept)}  # from the first step, evenly
        if info.step in wanted:
            molecule = state_to_batch(info.z_x, info.z_h, info.layout).molecules()[self.position]
            self.kept.append(ChainFrame(info.t, *molecule))


def generate(
    loaded: LoadedModel,
    settings: SampleSettings,
    checkpoint: Path,
    progress: bool = True,
    chain_frames: int = 0,
    fragment: Fragment | None = None,
) -> Samples:
    """Sample `settings.num_molecules` molecules from a loaded checkpoint; SamplingError names a failing step.

    With chain_frames > 0 molecule 0 (in output order) also has its denoising chain recorded (the final
    molecule is the last frame). The returned settings name the steps taken, also when the default was asked for.
    With a fragment every molecule is sampled around it (`molgen.fragment`).
    """
    settings.check(loaded.schedule.timesteps)
    device = loaded.schedule.gamma_table.device
    generator = torch.Generator(device).manual_seed(settings.seed)
    check_fragment(fragment, settings, loaded.node_distribution)
    counts = (atom_counts(loaded, settings, generator) if fragment is None
              else fragment_atom_counts(loaded.node_distribution, fragment, settings, generator))  # [B]
    batches = size_batches(counts, settings.batch_size)
    molecules: list[Molecule | None] = [None] * len(counts)
    recorder = _ChainRecorder(chain_frames, batches) if chain_frames > 0 else None
    bar = tqdm(total=len(batches) * settings.resolved_steps, desc=f"sampling ({settings.sampler})", unit="step",
               disable=not progress)
    start = time.perf_counter()
    with bar, torch.inference_mode():
        for number, indices in enumerate(batches):
            record = recorder if recorder is not None and number == recorder.batch_number else None

            def callback(info: StepInfo, record=record) -> None:
                bar.update(1)
                if record is not None:
                    record(info)

            if fragment is None:
                batch = sample(loaded.model, loaded.schedule, counts[indices], sampler=settings.sampler,
                               steps=settings.resolved_steps, generator=generator, callback=callback, device=device)
            else:
                batch = sample_around(loaded, fragment, counts[indices], settings, generator, callback, device)
            for index, molecule in zip(indices.tolist(), batch.molecules()):
                molecules[index] = molecule
            bar.set_postfix(molecules=f"{sum(len(b) for b in batches[:number + 1])}/{len(counts)}")
    seconds = time.perf_counter() - start
    chain = []
    if recorder is not None:
        chain = recorder.kept + [ChainFrame(0.0, *molecules[0])]
    resolved = replace(settings, steps=settings.resolved_steps)
    return Samples(molecules=molecules, settings=resolved, checkpoint=checkpoint, checkpoint_step=loaded.step,
                   seconds=seconds, chain=chain, compute=describe_compute(device, model_precision(loaded.model)),
                   fragment=fragment)


def sample_molecules(
    checkpoint: str | Path | None = None,
    num_molecules: int = 100,
    *,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    seed: int = 0,
    num_atoms: int | None = None,
    batch_size: int = 100,
    device: str = "auto",
    use_ema: bool = True,
    precision: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    chain_frames: int = 0,
    fixed: FixedSource | None = None,
    resample: int = 0,
) -> Samples:
    """Load a checkpoint (default: the shipped one) and sample molecules; see `SampleSettings` for the arguments.

    fixed: a fragment file (.xyz/.sdf, one molecule) or (positions [K, 3] Å, atom types [K]): every molecule's
    first K atoms are the fragment's, in its frame (`molgen.fragment`); resample: RePaint round trips per step.
    """
    settings = SampleSettings(num_molecules=num_molecules, sampler=sampler, steps=steps, seed=seed,
                              num_atoms=num_atoms, batch_size=batch_size, device=device, use_ema=use_ema,
                              precision=precision, threads=threads, resample=resample)
    settings.check()
    fragment = load_fragment(fixed) if fixed is not None else None
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    return generate(load_model(checkpoint, settings), settings, path, progress, chain_frames, fragment)


def chain_labels(frames: Sequence[ChainFrame]) -> list[str]:
    """Labels of the chain's frames: the time t of each state, 't = 0 (sample)' for the final molecule."""
    return [f"t = {frame.t:.3f}" for frame in frames[:-1]] + ["t = 0 (sample)"]
