"""The state of a training run: where it is (:class:`TrainState`, saved as ``pos``) and what it
holds once set up (:class:`Run`); shared by the steps of ``core.fit`` and ``core.steps``."""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from . import __version__
from . import checkpoint as ckpt
from .config import to_dict
from .data import DataBundle, to_plain
from .dist import Dist
from .progress import Progress
from .recipe import RunConfig
from .runlog import MetricsLog


@dataclass
class TrainState:
    """Where the run is; saved as ``pos`` in ``last.pt``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    best: float | None = None  # best monitored validation value
    best_step: int = -1
    bad: int = 0  # validations without improvement (early stopping)
    elapsed: float = 0.0  # training seconds, summed over resumes
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Run:
    """Everything a training run holds once set up."""

    cfg: RunConfig
    out: Path
    dist: Dist
    device: torch.device
    data: DataBundle
    model: torch.nn.Module
    runner: torch.nn.Module  # model.loss, under DDP when distributed
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None  # trainer.ema_decay: the weight average
    amp: contextlib.AbstractContextManager[Any]  # autocast, or a null context
    steps_per_epoch: int
    total_steps: int
    state: TrainState
    log: MetricsLog
    prog: Progress | None = None
    resumed: bool = False
    t0: float = 0.0
    last_eval_step: int = -1
    running: dict[str, float] = field(default_factory=dict)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is validated, saved as best and tested: the averaged weights when there are some."""
        return self.ema.module if self.ema is not None else self.model

    def epochs_done(self) -> float:  # fractional: 1.50 = halfway through the second epoch
        return self.state.epoch + self.state.batch / self.steps_per_epoch

    def extra(self) -> dict[str, Any]:
        """What inference needs without the data (scalers, item maps, ...): in every checkpoint."""
        return {"version": __version__, "inference": to_plain(self.data.inference),
                "model_kwargs": to_plain(self.data.model_kwargs)}

    def snapshot(self) -> dict[str, Any]:
        return ckpt.training_state(model=self.model, optim=self.opt, sched=self.sched, scaler=self.scaler,
                                   ema=self.ema, pos=self.state.as_dict(), config=to_dict(self.cfg), extra=self.extra())


def model_name(cfg: RunConfig) -> str:
    """The registered model name (``cfg.model_name``, or ``cfg.model["name"]`` where the model
    section is a dict): fit does not depend on the shape of the model section."""
    name = getattr(cfg, "model_name", None)
    if name:
        return str(name)
    m = cfg.model
    return str(m["name"] if isinstance(m, dict) else getattr(m, "name", type(m).__name__))


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best if mode == "min" else value > best


def batch_plan(n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: a function of (seed, epoch) only, so a resume replays them."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    plan = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and plan and len(plan[-1]) < batch_size:
        plan.pop()
    return plan
