"""Data-parallel training over processes started by `torchrun` (PyTorch's DistributedDataParallel).

torchrun starts one process per device and tells each its place through the environment: RANK (0..W-1 over all
machines), WORLD_SIZE (W) and LOCAL_RANK (its index on this machine, which picks its GPU). Every process builds the
same global batch (the batch order depends only on (seed, epoch)), takes its contiguous shard of B / W molecules,
and DistributedDataParallel averages the gradients over the processes. With the per-molecule loss normalisation
the average of the shards' mean losses is the mean over the global batch, and each molecule's t and noise depend
only on (seed, step, index), so a W-process step equals a one-process step on the same global batch up to float
rounding. The averaged gradients are bitwise the same in every process, hence so are the gradient norm, the
clipping decision, the optimizer step and the EMA.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from molgen.errors import MolgenError

COLLECTIVE_TIMEOUT = datetime.timedelta(hours=1)
"""How long a process waits in a collective: the others wait while process 0 evaluates and samples alone."""


@dataclass(frozen=True)
class World:
    """The processes of a data-parallel run and this process's place among them.

    Attributes:
        rank: this process's index, 0..size-1 (process 0 logs and writes checkpoints).
        size: W, the number of processes.
        local_rank: this process's index on its machine (the GPU it uses).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is process 0, the one that logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.size > 1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> World:
        """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK (one process when they are unset)."""
        environ = os.environ if environ is None else environ
        try:
            world = cls(rank=int(environ.get("RANK", 0)), size=int(environ.get("WORLD_SIZE", 1)),
                        local_rank=int(environ.get("LOCAL_RANK", 0)))
        except ValueError:
            raise MolgenError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (start processes with torchrun)") from None
        if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
            raise MolgenError(f"invalid process environment: RANK={world.rank}, WORLD_SIZE={world.size}, "
                              f"LOCAL_RANK={world.local_rank}")
        return world

    def device(self, device: torch.device) -> torch.device:
        """The device of this process: a CUDA device without an index becomes cuda:LOCAL_RANK."""
        if device.type != "cuda" or not self.distributed:
            return device
        if device.index is not None:
            raise MolgenError(f"train.device is {device} but the run has {self.size} processes: use 'cuda' or 'auto' "
                              "(each process takes the GPU of its LOCAL_RANK)")
        return torch.device("cuda", self.local_rank)


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the run's process group for the block (nccl for CUDA, gloo for the CPU); nothing for one process."""
    if not world.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size,
                            timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(indices: Tensor, world: World) -> Tensor:
    """This process's contiguous share of a global batch of B dataset indices [B] -> [B / W]."""
    if len(indices) % world.size:
        raise MolgenError(f"a batch of {len(indices)} molecules cannot be split evenly over {world.size} processes: "
                          "make data.batch_size a multiple of the number of processes")
    size = len(indices) // world.size
    return indices[world.rank * size : (world.rank + 1) * size]


def mean_over_processes(value: Tensor, world: World) -> float:
    """The mean of a scalar over all processes (the value itself for one process)."""
    if not world.distributed:
        return float(value.detach())
    total = value.detach().to(torch.float64).reshape(1).clone()  # [1]
    dist.all_reduce(total)
    return float(total) / world.size


def gather_over_processes(value: Tensor, world: World) -> Tensor:
    """Every process's `value` [n, ...] (the same shape in all), concatenated in rank order -> [W * n, ...]."""
    if not world.distributed:
        return value
    gathered = [torch.empty_like(value) for _ in range(world.size)]
    dist.all_gather(gathered, value.contiguous())
    return torch.cat(gathered)


def any_process(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """Each flag, true if it is true in any process (so that all processes stop at the same step)."""
    if not world.distributed:
        return list(flags)
    values = torch.tensor(flags, dtype=torch.int32, device=device)  # [F]
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def replicas_agree(tensors: list[Tensor], world: World, device: torch.device) -> bool:
    """Whether every process holds the same values: compares a float64 fingerprint of `tensors` across processes."""
    if not world.distributed:
        return True
    fingerprint = torch.stack([t.detach().to(device, torch.float64).sum() for t in tensors])  # [T]
    gathered = [torch.empty_like(fingerprint) for _ in range(world.size)]
    dist.all_gather(gathered, fingerprint)
    return all(torch.equal(other, fingerprint) for other in gathered)


def data_parallel(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The model as the loss calls it: wrapped in DistributedDataParallel when there are several processes.

    The wrapper shares the model's parameters, so the optimizer, the EMA and the checkpoints use the bare model.
    """
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_initialized():
        raise MolgenError(f"a run of {world.size} processes needs their process group: start it with torchrun and "
                          "`molgen train`")
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def check_replicas(modules: list[torch.nn.Module], clip_history: list[float], step: int, world: World,
                   device: torch.device) -> None:
    """MolgenError unless every process holds the same weights of `modules` (the model and its EMA) and the same
    clipping history at `step`."""
    history = torch.tensor(clip_history, dtype=torch.float64)  # [<= 50]
    tensors = [*(p for module in modules for p in module.parameters()), history]
    if not replicas_agree(tensors, world, device):
        raise MolgenError(f"at step {step} the {world.size} processes hold different weights; the data-parallel "
                          "run is out of step (the checkpoint of the last agreeing step is kept)")
