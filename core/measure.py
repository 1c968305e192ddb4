"""What benchmarks and evaluations measure about a model, in one place.

- :func:`count_params`: the number of parameters (every bench's ``params`` column).
- :func:`count_flops` / :func:`count_macs`: FLOPs of one call via torch's ``FlopCounterMode``
  (2 FLOPs per multiply-add; MACs = FLOPs / 2, the fvcore convention, e.g. OpenSTL's "FLOPs"
  column). Only what torch's counter covers is counted (matmuls, convolutions; not FFTs).
- :func:`model_device`: the device a model lives on (its first parameter or buffer; CPU for a
  model with neither), for evaluation loops that move batches to the model. (Choosing a device,
  moving batches and the trainer's autocast are in :mod:`ostinato.core.device`.)
- :func:`clock`: a budget's clock: process CPU time on CPU (all threads; other jobs on a shared
  machine do not shift it), synchronised wall-clock time on CUDA.
"""
from __future__ import annotations

import time
from typing import Callable

import torch


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``trainable_only``: those with ``requires_grad``); buffers are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (torch's FlopCounterMode: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False)
    with mode:
        fn()
    return int(mode.get_total_flops())


def count_macs(fn: Callable[[], object]) -> float:
    """Multiply-adds of one call of ``fn``: :func:`count_flops` / 2."""
    return count_flops(fn) / 2


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def clock(device: torch.device) -> Callable[[], float]:
    """The budget's clock: process CPU time on CPU, synchronised wall-clock time on CUDA."""
    if device.type == "cuda":
        def wall() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return wall
    return time.process_time
