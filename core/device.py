"""Where and how a run computes: device choice, seeding, moving batches, autocast."""
from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch

from .errors import ConfigError


def select_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={spec!r} but CUDA is not available; use auto or cpu")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        out = [to_device(v, device) for v in batch]
        return type(batch)(out) if not hasattr(batch, "_fields") else type(batch)(*out)
    return batch


def autocast(device: torch.device, amp: str) -> tuple[Any, bool]:
    """(the autocast context for ``trainer.amp``, whether a GradScaler is needed)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext(), False
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16), True
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.float16), True
    return torch.autocast(device.type, dtype=torch.bfloat16), False
