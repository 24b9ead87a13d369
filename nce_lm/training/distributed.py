"""Data-parallel training under ``torchrun``: process group, ranks, and the few collectives the trainers need.

``torchrun --nproc_per_node N -m nce_lm lm train ...`` (or ``... skipgram ...``) sets RANK, WORLD_SIZE and
LOCAL_RANK. The language model then wraps its model in DistributedDataParallel (NCCL on GPUs, gloo on
CPUs), which averages gradients after every backward pass; the skip-gram trainer averages its two tables
across ranks every few batches (model averaging). Each rank draws its own noise from a rank-specific seed;
only rank 0 writes files. Without those variables everything runs in one process, no process group is created
and torch is not imported here.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nce_lm.errors import NceLmError
from nce_lm.training.devices import resolve_device_name, torch_device

if TYPE_CHECKING:
    import torch


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "gloo"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: str) -> DistributedContext:
        """Join the process group that torchrun describes, or run alone when it describes none.

        On CUDA each rank takes GPU LOCAL_RANK (``torch.cuda.set_device``) and binds its NCCL group to it.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        import torch
        import torch.distributed as dist

        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        on_cuda = resolve_device_name(device).startswith("cuda")
        backend = "nccl" if on_cuda else "gloo"
        bound: torch.device | None = None
        if on_cuda:
            if local_rank >= torch.cuda.device_count():
                raise NceLmError(f"local rank {local_rank} has no GPU: torch sees {torch.cuda.device_count()}")
            bound = torch.device("cuda", local_rank)
            torch.cuda.set_device(bound)
        if not dist.is_initialized():
            try:
                dist.init_process_group(backend=backend, rank=rank, world_size=world_size, device_id=bound)
            except (RuntimeError, ValueError) as err:
                raise NceLmError(f"cannot join the {backend} process group: {err}") from None
        return cls(rank, world_size, local_rank, backend)

    def device(self, requested: str) -> torch.device:
        """The device of this rank as a torch device (:meth:`device_name`)."""
        return torch_device(self.device_name(requested))

    def device_name(self, requested: str) -> str:
        """The device of this rank: cuda:LOCAL_RANK for a CUDA run under torchrun, else ``requested`` resolved
        (auto → cuda when visible; :func:`~nce_lm.training.devices.resolve_device_name`)."""
        name = resolve_device_name(requested)
        if name.startswith("cuda") and self.active:
            return f"cuda:{self.local_rank}"
        return name

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([float(flag)], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def sum(self, value: float) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item())

    def _collective_device(self) -> torch.device:
        import torch

        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def average_(self, tensor: torch.Tensor) -> None:
        """Replace ``tensor`` in place by its mean over the ranks."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor)
            tensor /= self.world_size

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group. Objects still holding it (a DistributedDataParallel wrapper in a reference
        cycle) are collected first: destroyed after the group, at interpreter exit, they aborted the process
        ("terminate called without an active exception") in about one run in three on a loaded machine."""
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()

    def all_reduce_sum_(self, tensor: torch.Tensor) -> None:
        """Replace ``tensor`` in place by its sum over the ranks (on its own device: CPU for gloo, the rank's GPU
        for NCCL); nothing to do in a single process."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
