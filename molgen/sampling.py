"""Sample molecules from a trained checkpoint: the Python API behind `molgen sample` and `molgen evaluate --checkpoint`.

    from molgen.sampling import sample_molecules
    samples = sample_molecules(num_molecules=20, seed=1)        # the shipped checkpoint, default sampler
    mols = samples.rdkit_molecules()                             # RDKit molecules with 3D conformers
    print(samples.metrics().format_table())

Atom counts are drawn from the checkpoint's training histogram (EDM), molecules are generated in batches of
similar size with the EMA weights, and every random draw comes from one generator seeded by `seed`: the same
seed, batch size and device give the same molecules. Nothing here needs the QM9 data package.

`generate` is the one sampling driver: the CLI, this API, evaluation and the trainer's in-training samples all
call it with a `LoadedModel` (`molgen.checkpoint`) and `SampleSettings` (`molgen.settings`). Around a fixed
fragment (read by `molgen.chem.io.read_fragment`) every molecule is sampled by inpainting (`sample_around`), its
counts drawn from the training histogram restricted to N > K. With property targets (`settings.targets`) every step
is guided toward them by EEGSDE's energy guidance and the counts are drawn from p(N | c) (`molgen.property.guides`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from molgen.batch import Molecule, MoleculeBatch, size_batches
from molgen.checkpoint import LoadedModel, load_model, resolve_checkpoint
from molgen.chem.io import FragmentSource, read_fragment
from molgen.choices import DEFAULT_SAMPLER
from molgen.device import resolve_device
from molgen.diffusion.inpainting import Fragment, sample_inpainting
from molgen.diffusion.process import state_to_batch
from molgen.diffusion.samplers import atom_counts, sample
from molgen.diffusion.steps import EpsModifier, StepHook, StepInfo
from molgen.errors import MolgenError
from molgen.precision import describe_compute, model_precision, resolve_precision, set_precision
from molgen.property.guides import GuidedRequest, guided_request
from molgen.settings import SampleSettings
from molgen.threads import configure_threads


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
    checkpoint: Path | None
    checkpoint_step: int
    seconds: float
    chain: list[ChainFrame] = field(default_factory=list)
    compute: str = ""  # the hardware, threads and precision used, e.g. "cpu (AVX2), 2 threads, fp32"
    fragment: Molecule | None = None  # the fixed atoms: the first K of every molecule, in the fragment's frame

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


def load_for_sampling(checkpoint: str | Path | None = None, settings: SampleSettings = SampleSettings()) -> LoadedModel:
    """The checkpoint (default: `resolve_checkpoint`) loaded with the weights the settings ask for, on their device,
    set to their precision (resolved for that device) and threads."""
    device = resolve_device(settings.device)
    configure_threads(settings.threads)
    loaded = load_model(resolve_checkpoint(checkpoint), use_ema=settings.use_ema, device=device)
    set_precision(loaded.model, resolve_precision(settings.precision, device))
    return loaded


def draw_atom_counts(
    loaded: LoadedModel, settings: SampleSettings, generator: torch.Generator, fragment: Molecule | None = None,
    guided: GuidedRequest | None = None,
) -> torch.Tensor:
    """The atom count of every molecule, int64 [num_molecules]: the one count asked for, or drawn from p(N)
    (around a fragment of K atoms: from p(N | N > K); with property targets: from p(N | c), `GuidedRequest`)."""
    above = 0 if fragment is None else len(fragment[1])
    if settings.num_atoms is None:
        prior = loaded.node_distribution
        prior = prior if guided is None else guided.node_distribution(prior, above)  # p(N | c)
        return atom_counts(prior, settings.num_molecules, generator, above=above)  # [B]
    try:
        return atom_counts(loaded.node_distribution, num_atoms=[settings.num_atoms] * settings.num_molecules)  # [B]
    except ValueError as err:
        raise MolgenError(f"cannot sample molecules of {settings.num_atoms} atoms: {err}") from None


class _ChainRecorder:
    """A sampler callback keeping `frames - 1` evenly spaced states of molecule 0 in output order (the sample
    completes the chain); it watches the batch `batch_number`, in which that molecule is at `position`."""

    def __init__(self, frames: int, batches: Sequence[torch.Tensor]) -> None:
        self.frames = frames
        self.kept: list[ChainFrame] = []
        self.batch_number = next(number for number, indices in enumerate(batches) if bool((indices == 0).any()))
        self.position = int((batches[self.batch_number] == 0).nonzero()[0])

    def __call__(self, info: StepInfo) -> None:
        """Keep the state of molecule 0 at the wanted steps (the state itself is left as it is)."""
        kept = self.frames - 1
        wanted = {(k * info.num_steps) // kept for k in range(kept)}  # from the first step, evenly
        if info.step in wanted:
            molecule = state_to_batch(info.z_x, info.z_h, info.layout).molecules()[self.position]
            self.kept.append(ChainFrame(info.t, *molecule))


def generate(
    loaded: LoadedModel,
    settings: SampleSettings,
    progress: bool = True,
    chain_frames: int = 0,
    fragment: Molecule | None = None,
) -> Samples:
    """Sample `settings.num_molecules` molecules from a loaded model; SamplingError names a failing step.

    Molecules are drawn in batches of similar size (`size_batches`). With chain_frames > 0 molecule 0 (in output
    order) also has its denoising chain recorded (the final molecule is the last frame). The returned settings
    name the steps taken (and the guidance scale), also when the default was asked for. With a fragment (positions [K, 3] Å, atom types
    [K]) every molecule is sampled around it (`sample_around`).
    """
    settings.check(loaded.schedule.timesteps)
    generator = torch.Generator(loaded.device).manual_seed(settings.seed)
    settings.check_fragment(fragment, loaded.node_distribution.supported)
    guided = guided_request(settings, loaded.device)  # None without property targets
    counts = draw_atom_counts(loaded, settings, generator, fragment, guided)  # [B]
    batches = size_batches(counts, settings.batch_size)
    recorder = _ChainRecorder(chain_frames, batches) if chain_frames > 0 else None
    bar = _progress_bar(settings, len(batches), progress)
    start = time.perf_counter()
    with bar, torch.inference_mode():
        molecules = _sample_batches(loaded, settings, counts, batches, generator, bar, recorder, fragment, guided)
    seconds = time.perf_counter() - start
    chain = recorder.kept + [ChainFrame(0.0, *molecules[0])] if recorder is not None else []
    resolved = replace(settings, steps=settings.resolved_steps,
                       guidance=guided.scale if guided is not None else settings.guidance)
    return Samples(molecules=molecules, settings=resolved,
                   checkpoint=loaded.path, checkpoint_step=loaded.step, seconds=seconds, chain=chain,
                   compute=describe_compute(loaded.device, model_precision(loaded.model)), fragment=fragment)


def _progress_bar(settings: SampleSettings, num_batches: int, progress: bool) -> tqdm:
    """A bar over the network calls of every batch: a tick per step and per RePaint round trip (R + 1 per step)."""
    calls = num_batches * settings.resolved_steps * (1 + settings.resample)
    if not settings.resample:
        return tqdm(total=calls, desc=f"sampling ({settings.sampler})", unit="step", disable=not progress)
    return tqdm(total=calls, desc=f"sampling ({settings.sampler}, {settings.resample} round trips per step)",
                unit="call", disable=not progress)


def _sample_batches(
    loaded: LoadedModel,
    settings: SampleSettings,
    counts: torch.Tensor,
    batches: list[torch.Tensor],
    generator: torch.Generator,
    bar: tqdm,
    recorder: _ChainRecorder | None,
    fragment: Molecule | None,
    guided: GuidedRequest | None = None,
) -> list[Molecule]:
    """The molecules of every batch of indices into counts [B], put back in the order of counts (guided toward the
    property targets of `guided` when given)."""
    molecules: list[Molecule | None] = [None] * len(counts)
    for number, indices in enumerate(batches):
        record = recorder if recorder is not None and number == recorder.batch_number else None
        modifiers = guided.modifiers(loaded.schedule, len(indices)) if guided is not None else []

        def hook(info: StepInfo, record=record) -> None:
            bar.update(1)
            if record is not None:
                record(info)

        if fragment is None:
            batch = sample(loaded.model, loaded.schedule, counts[indices], sampler=settings.sampler,
                           steps=settings.resolved_steps, generator=generator, callback=hook, churn=settings.churn,
                           device=loaded.device, modifiers=modifiers)
        else:
            batch = sample_around(loaded, fragment, counts[indices], settings, generator, hook,
                                  on_round_trip=lambda: bar.update(1), modifiers=modifiers)
        for index, molecule in zip(indices.tolist(), batch.molecules()):
            molecules[index] = molecule
        bar.set_postfix(molecules=f"{sum(len(b) for b in batches[:number + 1])}/{len(counts)}")
    return molecules


def sample_around(
    loaded: LoadedModel,
    fragment: Molecule,
    counts: torch.Tensor,
    settings: SampleSettings,
    generator: torch.Generator,
    callback: StepHook,
    on_round_trip: Callable[[], None] | None = None,
    modifiers: Sequence[EpsModifier] = (),
) -> MoleculeBatch:
    """One batch of molecules of counts [B] atoms around the fragment, in the fragment's frame: inpainting on EDM's
    ancestral sampler, each molecule's copy of the fragment turned by a random rotation (PONITA on a fixed
    orientation grid is only approximately equivariant), the ε-modifiers applied at every network call."""
    fixed = Fragment(torch.as_tensor(fragment[0]), torch.as_tensor(fragment[1]))
    return sample_inpainting(loaded.model, loaded.schedule, fixed, counts, steps=settings.resolved_steps,
                             resample=settings.resample, rotate=True, generator=generator, callback=callback,
                             on_round_trip=on_round_trip, modifiers=modifiers, device=loaded.device)


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
    fixed: FragmentSource | None = None,
    resample: int = 0,
    churn: float = 0.0,
    targets: Mapping[str, float] | Sequence[tuple[str, float]] = (),
    guidance: float | None = None,
    regressors: str | Path | None = None,
    guidance_bound: float | None = None,
) -> Samples:
    """Load a checkpoint (default: the shipped one) and sample molecules; see `SampleSettings` for the arguments.

    fixed: a fragment file (.xyz/.sdf, one molecule) or (positions [K, 3] Å, atom types [K]): every molecule's
    first K atoms are the fragment's, in its frame (`sample_around`); resample: RePaint round trips per step.
    targets: property targets in EDM's units, e.g. {"gap": 6500, "alpha": 80}, guided toward with scale `guidance`
    (EEGSDE's energy guidance, `molgen.property.guidance`; None: the default scale), atom counts drawn from p(N | c);
    regressors: the folder of their NAME_guide.pt files (default `molgen.property.targets.regressor_folder`);
    guidance_bound: the largest RMS of the guidance term per molecule (None: unbounded).
    """
    pairs = tuple(targets.items()) if isinstance(targets, Mapping) else tuple(tuple(pair) for pair in targets)
    settings = SampleSettings(num_molecules=num_molecules, sampler=sampler, steps=steps, seed=seed,
                              num_atoms=num_atoms, batch_size=batch_size, device=device, use_ema=use_ema,
                              precision=precision, threads=threads, resample=resample, churn=churn, targets=pairs,
                              guidance=guidance, regressors=None if regressors is None else str(regressors),
                              guidance_bound=guidance_bound)
    settings.check()
    fragment = read_fragment(fixed) if fixed is not None else None
    return generate(load_for_sampling(checkpoint, settings), settings, progress, chain_frames, fragment)


def chain_labels(frames: Sequence[ChainFrame]) -> list[str]:
    """Labels of the chain's frames: the time t of each state, 't = 0 (sample)' for the final molecule."""
    return [f"t = {frame.t:.3f}" for frame in frames[:-1]] + ["t = 0 (sample)"]
