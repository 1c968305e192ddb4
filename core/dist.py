"""Multi-process data parallel under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU).

Every process sees the same global batch order and takes an equal slice of each global
batch; rank 0 alone writes the run folder.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .device import select_device


class Dist:
    """The process group of this run (a group of one without ``torchrun``)."""

    def __init__(self, device_spec: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not torch.distributed.is_initialized():
            use_cuda = torch.cuda.is_available() and device_spec != "cpu"
            if use_cuda:
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, spec: str) -> torch.device:
        dev = select_device(spec)
        if self.enabled and dev.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return dev

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)])
        torch.distributed.broadcast(t, 0)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` under DDP when there are several processes, else itself."""
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


class LossModule(torch.nn.Module):
    """Lets DDP wrap ``model.loss`` (DDP synchronises gradients of what ``forward`` runs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> Any:
        return self.model.loss(batch)
