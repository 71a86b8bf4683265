"""CPU threads for training and sampling: as many as the cores this process may use, waiting without spinning.

PyTorch's default is one thread per core of the machine, even where the process may use fewer (a CPU affinity
mask, or a container's cgroup quota), and its OpenMP threads spin while they wait for each other. On a shared
2-core machine both hurt badly: with one other busy process, the two threads of a parallel region take turns with
it, and each one that finishes early burns its core spinning instead of yielding it. So molgen

- uses min(cores in `os.sched_getaffinity`, the cgroup's `cpu.max` quota rounded up) threads, and
- sets `OMP_WAIT_POLICY=PASSIVE` (waiting threads sleep) before torch is imported, unless the user chose a
  policy. `molgen/__init__.py` calls `set_openmp_policy()` first thing, so importing molgen before torch is
  enough; OpenMP reads the variable once, when torch loads it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def set_openmp_policy() -> None:
    """Let idle OpenMP threads sleep instead of spinning (effective only before torch is first imported)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cgroup_cpu_quota(cpu_max: Path = CGROUP_V2_CPU_MAX, quota_v1: Path = CGROUP_V1_QUOTA,
                     period_v1: Path = CGROUP_V1_PERIOD) -> float | None:
    """The cgroup's CPU quota in cores (cgroup v2 `cpu.max`, else v1 `cfs_quota_us`), None when unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = quota_v1.read_text().strip(), period_v1.read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        cores = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return cores if cores > 0 else None


def affinity_cores() -> int:
    """Cores in this process's CPU affinity mask (os.cpu_count() where the mask is not available)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_cores() -> int:
    """The cores this process may use: min(affinity mask, cgroup quota rounded up), at least 1."""
    cores = affinity_cores()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads`; when None, to `available_cores()` unless OMP_NUM_THREADS is set
    (as torchrun sets it for several processes per machine), which is then left in force. Returns the count."""
    import torch

    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    count = available_cores() if threads is None else threads
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
