"""Numeric precision as a run-time choice: `auto | fp32 | bf16`, never part of a model's config.

bf16 autocast pays only where the hardware computes in bf16 natively: a CUDA device with bf16 support, or a
CPU whose `torch.cpu.get_capabilities()` reports `avx512_bf16` or `amx_bf16`. On a CPU without them (e.g. an
AVX2-only Zen 3) PyTorch emulates bf16 and a training step is 5-7x *slower* than in fp32, so `auto` picks bf16
only where it is native. `torch.backends.cpu.get_cpu_capability()` cannot tell the two apart: it says "AVX512"
also on AVX-512 CPUs without bf16.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import torch

from molgen.choices import precision_problem
from molgen.errors import MolgenError

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_capabilities() -> Mapping[str, bool]:
    """The CPU's instruction-set flags that PyTorch may use ({} where this torch cannot tell).

    With the ISA capped below AVX-512 (`ATEN_CPU_CAPABILITY=avx2`, as when emulating an AVX2-only CPU) the
    AVX-512 and AMX flags are dropped and "emulated" is set: those kernels are then not used.
    """
    probe = getattr(torch.cpu, "get_capabilities", None)
    flags = dict(probe()) if probe is not None else {}
    if flags.get("avx512_f") and not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        flags = {name: on for name, on in flags.items() if not name.startswith(("avx512", "amx"))}
        flags["emulated"] = True
    return flags


def native_bf16(device: torch.device, capabilities: Callable[[], Mapping[str, bool]] = cpu_capabilities) -> bool:
    """Whether `device` computes bf16 natively (CUDA: torch's check; CPU: the AVX-512 bf16 or AMX bf16 flags)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = capabilities()
        return any(flags.get(name, False) for name in NATIVE_BF16_FLAGS)
    return False


def check_precision(name: str) -> str:
    """`name` if it is one of `molgen.choices.PRECISIONS`, else one MolgenError naming the allowed values."""
    if precision_problem(name) is not None:
        raise MolgenError(precision_problem(name))
    return name


def resolve_precision(name: str, device: torch.device,
                      capabilities: Callable[[], Mapping[str, bool]] = cpu_capabilities) -> str:
    """'auto' -> 'bf16' where `device` has native bf16, else 'fp32'; 'fp32' and 'bf16' are returned as given."""
    check_precision(name)
    if name != "auto":
        return name
    return "bf16" if native_bf16(device, capabilities) else "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: no autocast, run in the inputs' dtype)."""
    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`'s type, or a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def set_precision(model: torch.nn.Module, precision: str) -> None:
    """Make a molgen denoiser run its network under `precision` ('fp32' or 'bf16', already resolved)."""
    if precision not in ("fp32", "bf16"):
        raise MolgenError(f"set_precision needs a resolved precision (fp32 or bf16), got {precision!r}")
    model.autocast_dtype = autocast_dtype(precision)


def model_precision(model: torch.nn.Module) -> str:
    """The precision a molgen denoiser runs in: 'bf16' under bf16 autocast, else 'fp32'."""
    return "bf16" if getattr(model, "autocast_dtype", None) == torch.bfloat16 else "fp32"


def cpu_kind(capabilities: Callable[[], Mapping[str, bool]] = cpu_capabilities) -> str:
    """A short label of the CPU kind for logs and benchmark tables: 'AVX-512 bf16+AMX', 'AVX-512 bf16',
    'AVX-512 (no bf16)', 'AVX2', 'AVX2 (emulated)' or the ISA torch reports."""
    flags = capabilities()
    if flags.get("emulated"):
        return "AVX2 (emulated)"
    if flags.get("avx512_bf16") or flags.get("amx_bf16"):
        return "AVX-512 bf16+AMX" if flags.get("amx_bf16") else "AVX-512 bf16"
    if flags.get("avx512_f"):
        return "AVX-512 (no bf16)"
    if flags.get("avx2"):
        return "AVX2"
    return torch.backends.cpu.get_cpu_capability()


def describe_compute(device: torch.device, precision: str) -> str:
    """One line naming the hardware, threads and precision, e.g. 'cpu (AVX2), 2 threads, fp32'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}), {precision}"
    threads = torch.get_num_threads()
    return f"{device.type} ({cpu_kind()}), {threads} thread{'' if threads == 1 else 's'}, {precision}"
