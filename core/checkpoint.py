"""Checkpoints: atomic writes, ``weights_only=True`` loads, and RNG state capture.

A checkpoint is a plain dict of tensors and Python primitives (so that it loads with
``torch.load(..., weights_only=True)``): model, optimizer, scheduler and grad-scaler state,
the RNG states of torch (CPU and CUDA), NumPy and Python, the loop position (epoch, step,
batch within the epoch), early-stopping state, the resolved config and the ostinato version.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError
from .io import atomic_write


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"state": list(random.getstate()[1]), "gauss": random.getstate()[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((3, tuple(int(x) for x in py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(obj: dict[str, Any], path: Path) -> None:
    """Write ``obj`` to ``path`` atomically (temp file + fsync + rename)."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise DataError(f"checkpoint {p} does not exist")
    import warnings

    try:
        with warnings.catch_warnings():  # torch's pickle-protocol UserWarning on foreign files
            warnings.simplefilter("ignore")
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torn or foreign file
        raise DataError(f"checkpoint {p} cannot be read: {_load_reason(e)}") from None


_EXPECTED = "expected an ostinato checkpoint (a .pt file written by `ostinato train`: tensors, numbers, strings, lists, dicts)"


def _load_reason(e: BaseException) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed. Never repeats torch's hint to
    load with ``weights_only=False``: that would run whatever code the file holds."""
    import re

    msg = str(e)
    if "Weights only load failed" in msg or "WeightsUnpickler" in msg or "weights_only" in msg:
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        what = f"a {m.group(1)} object" if m else "pickled Python objects"
        return f"it holds {what}, which a safe (weights-only) load refuses; {_EXPECTED}"
    if "zip archive" in msg or "central directory" in msg or isinstance(e, (EOFError,)):
        return f"the file is truncated or corrupted; {_EXPECTED}"
    first = re.sub(r"\x1b\[[0-9;]*m", "", msg).strip().splitlines()[0] if msg.strip() else type(e).__name__
    return f"{first[:200]}; {_EXPECTED}"


# ----------------------------------------------------------------------------- training runs
LAST, PREVIOUS, DIVERGED = "last.pt", "last.prev.pt", "last.diverged.pt"


def training_state(
    *, model: torch.nn.Module, optim: torch.optim.Optimizer, sched: Any, scaler: Any, ema: torch.nn.Module | None,
    pos: dict[str, Any], config: dict[str, Any], extra: dict[str, Any],
) -> dict[str, Any]:
    """Everything ``--resume`` needs (``last.pt``); ``extra``: ``inference``, ``model_kwargs``, ``version``."""
    snap = {
        "model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
        "scaler": scaler.state_dict(), "pos": dict(pos), "rng": rng_state(), "config": config, **extra,
    }
    if ema is not None:
        snap["ema"] = ema.state_dict()
    return snap


def save_last(obj: dict[str, Any], out: Path) -> None:
    """Write ``out/last.pt`` atomically; the file it replaces stays as ``last.prev.pt`` (a hard
    link, so no copy), the fallback when the newest turns out to hold diverged weights."""
    last = Path(out) / LAST
    if last.exists():
        tmp = last.with_name(f".{PREVIOUS}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(last, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(last, tmp)
        os.replace(tmp, last.with_name(PREVIOUS))
    save(obj, last)


def _good(path: Path, before_step: int) -> bool:
    """``path`` holds finite weights from a step before ``before_step``."""
    if not path.exists():
        return False
    try:
        state = load(path)
    except DataError:
        return False
    finite = all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    return finite and int(state["pos"]["step"]) < before_step


def roll_back(out: Path, bad_step: int) -> int | None:
    """After a non-finite loss computed from the weights of step ``bad_step``: make ``last.pt``
    the newest checkpoint from before ``bad_step`` with finite weights and return its step;
    ``None`` when there is none (a diverged ``last.pt`` is moved to ``last.diverged.pt``)."""
    out = Path(out)
    last, prev = out / LAST, out / PREVIOUS
    if not _good(last, bad_step):
        if last.exists():
            os.replace(last, out / DIVERGED)
        if not _good(prev, bad_step):
            return None
        os.replace(prev, last)
    return int(load(last)["pos"]["step"])
