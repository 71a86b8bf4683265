"""CPU threads for training and sampling: the cores this process may use and that no one else is using.

PyTorch's default is one thread per core of the machine, even where the process may use fewer (a CPU affinity
mask, or a container's cgroup quota), and even when another busy process already occupies some of them. On a
shared 2-core machine the second case is the costly one: with one busy process beside it, a 2-thread team
waits at every parallel region for the thread that shares its core (eval/bench_threads.md: 4-28% of the
throughput alone, depending on the OpenMP wait policy), while one thread keeps 100% of its own. So, unless
told otherwise (`threads`, or the MOLGEN_THREADS environment variable), molgen uses

    min(cores in `os.sched_getaffinity`, the cgroup's `cpu.max` quota rounded up, cores idle right now)

threads, where "idle" is measured over 0.1 s from /proc/stat and counts low-priority (niced) work as idle: a
`nice -n 19` background run yields its cores. At least one thread. Under torchrun, OMP_NUM_THREADS is left in
force. A count asked for (`threads`, MOLGEN_THREADS) above the cores this process may use is capped at them, with a
one-line warning: threads beyond the cores only wait on each other.
The choice is made once, when sampling or training starts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from molgen.errors import MolgenError

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
PROC_STAT = Path("/proc/stat")

log = logging.getLogger(__name__)


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


def busy_cores(interval: float = 0.1, stat: Path = PROC_STAT) -> float | None:
    """Cores' worth of normal-priority work on the machine over `interval` seconds (user, system, interrupts,
    steal; niced work, idle and I/O wait excluded), or None where /proc/stat cannot be read."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
        user, _nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return user + system + irq + softirq + steal, sum(fields[:8])

    try:
        busy_0, total_0 = sample()
        time.sleep(interval)
        busy_1, total_1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total_1 <= total_0:
        return None
    return (busy_1 - busy_0) / (total_1 - total_0) * (os.cpu_count() or 1)


def available_cores() -> int:
    """The cores this process may use: min(affinity mask, cgroup quota rounded up), at least 1."""
    cores = affinity_cores()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def free_cores() -> int:
    """`available_cores()` less the cores other normal-priority processes keep busy right now, at least 1."""
    cores = available_cores()
    if cores == 1:
        return 1
    busy = busy_cores()
    if busy is None:
        return cores
    idle = (os.cpu_count() or cores) - busy
    return max(1, min(cores, math.floor(idle + 0.5)))


def _threads_from_environment(text: str) -> int:
    """MOLGEN_THREADS as a positive integer, else one clear MolgenError."""
    if not text.strip().isdigit() or int(text) < 1:
        raise MolgenError(f"MOLGEN_THREADS must be a positive integer, got {text!r}")
    return int(text)


def capped_threads(threads: int) -> int:
    """`threads`, or `available_cores()` with a one-line warning where `threads` asks for more."""
    cores = available_cores()
    if threads <= cores:
        return threads
    log.warning("%d threads asked for, but this process may use %s; using %d", threads,
                "1 core" if cores == 1 else f"{cores} cores", cores)
    return cores


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads`; when None, to $MOLGEN_THREADS or `free_cores()`, unless
    OMP_NUM_THREADS is set (as torchrun sets it), which is then left in force. A count asked for is capped at
    `available_cores()` (`capped_threads`). Returns the count."""
    import torch

    if threads is None and os.environ.get("MOLGEN_THREADS"):
        threads = _threads_from_environment(os.environ["MOLGEN_THREADS"])
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    count = free_cores() if threads is None else capped_threads(threads)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
