"""The one training loop for every domain: ``fit(cfg, out_dir)``, in named steps.

Models provide ``loss(batch) -> (loss, logs)``; domains provide
``evaluate(model, data, split, cfg) -> metrics``. ``fit`` owns everything else:

- one training per run folder: ``<out>/.lock`` is held (``fcntl.flock``) for the whole run;
  a second run into the same folder stops at once with a one-line error naming the holder
  (exit code 2); the OS drops the lock when the holder dies, SIGKILL included (``core.runlock``);
- device selection (CUDA if present, else CPU) and AMP (bf16 autocast on CUDA by default);
- the optimizer and LR schedule (``core.optim``), gradient clipping;
- validation every ``eval_every`` epochs (or ``eval_every_steps``), early stopping and
  best-checkpoint selection on the validation split only; the test split is evaluated
  once, at the end, from ``best.pt``;
- atomic checkpoints (``last.pt``, ``best.pt``) that hold everything needed to resume;
  ``resume=True`` continues a killed run and ends bit-identical (on CPU) to an
  uninterrupted one: the batch order of each epoch is a function of (seed, epoch), the
  position within the epoch is saved, and so are all RNG states and the elapsed time.
  The config must be the saved one except for ``core.resume.MAY_CHANGE`` (the budget:
  ``trainer.max_steps``, ``max_epochs``, ``max_minutes``; and ``trainer.log_every_s``),
  which then takes effect; a run killed before its first checkpoint starts from scratch;
- progress on stderr (``core.progress``, off with ``quiet``): a tqdm bar on a TTY, else one
  line every ``trainer.log_every_s`` seconds (step, epoch, mean loss, lr, steps/s, ETA); every
  validation and the final test print their metrics as one line either way;
- ``metrics.csv`` (long format: step, epoch, time_s, name, value), TensorBoard, ``results.json``
  (``core.runlog``);
- optional weight averaging (``trainer.ema_decay``): an exponential moving average of the
  parameters and buffers (``torch.optim.swa_utils.AveragedModel``), updated after every
  optimizer step; validation, ``best.pt`` and the test use the averaged weights;
- a non-finite loss stops the run and raises :class:`TrainingError` (exit code 1); ``last.pt``
  is then the newest checkpoint whose weights were finite and gave a finite loss (the one
  before the diverging update; ``core.checkpoint.roll_back``), and the error names its step;
- multi-process data parallel under ``torchrun`` (``core.dist``): every process sees the same
  global batch order and takes an equal slice of each global batch.

The steps (``core.steps``, state in ``core.runstate``): :func:`fit` = lock the folder, :func:`setup` (data, model, optimizer, schedule,
scaler, EMA, resume or ``init_from``), :func:`run_epoch` (of :func:`train_step`), with
:func:`validate` and :func:`checkpoint` between, then :func:`finish` (test, ``results.json``).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .build import build_data, build_model
from .config import save_yaml, to_dict
from .data import DataBundle
from .device import autocast as autocast_for, seed_everything
from .dist import Dist, LossModule
from .errors import ConfigError
from .optim import build_optimizer, build_scheduler
from .progress import Progress
from .recipe import RunConfig
from .resume import MAY_CHANGE, check_resumable, check_same_config, load_for_resume
from .runlock import RunLock
from .runlog import MetricsLog
from .runstate import Run, TrainState, batch_plan, model_name
from .steps import checkpoint, finish, out_of_budget, run_epoch, train_step, validate

__all__ = ["fit", "setup", "run_epoch", "train_step", "validate", "checkpoint", "finish", "TrainState", "Run"]


# ----------------------------------------------------------------------------- fit
def fit(
    cfg: RunConfig,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; returns the contents of ``results.json``."""
    out = Path(out_dir)
    dist = Dist(cfg.trainer.device)
    if resume and dist.main:
        check_resumable(out)
    with contextlib.ExitStack() as stack:
        if dist.main:
            stack.enter_context(RunLock(out))
        dist.barrier()  # the other ranks wait for the lock (rank 0 failing to get it ends the job)
        saved = _start(cfg, out, dist, resume)
        run = setup(cfg, out, dist, data_root, saved)
        stack.callback(run.log.close)
        run.prog = _progress(run, show=dist.main and not quiet)
        run.model.train()
        run.t0 = time.time() - run.state.elapsed
        stop = run.state.done or out_of_budget(run)
        while not stop and run.state.epoch < cfg.trainer.max_epochs:
            stop = run_epoch(run)
        return finish(run)
    raise AssertionError("unreachable")  # pragma: no cover


def _start(cfg: RunConfig, out: Path, dist: Dist, resume: bool) -> dict[str, Any] | None:
    """Seed, check what needs no data, and read ``last.pt`` when resuming (else None)."""
    t_cfg = cfg.trainer
    if t_cfg.threads:
        torch.set_num_threads(t_cfg.threads)
    seed_everything(t_cfg.seed)
    if t_cfg.ema_decay and not 0.0 < t_cfg.ema_decay < 1.0:  # before the data and model are built
        raise ConfigError(f"trainer.ema_decay={t_cfg.ema_decay}: expected 0 (off) or a decay in (0, 1)")
    if resume:
        return load_for_resume(out, dist.main)
    if dist.main and (out / ckpt.LAST).exists():
        raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    return None


def setup(cfg: RunConfig, out: Path, dist: Dist, data_root: str | Path | None,
          saved: dict[str, Any] | None) -> Run:
    """Data, model (``init_from`` or the resumed state), optimizer, schedule, scaler, EMA, log."""

    t_cfg = cfg.trainer
    device = dist.device(t_cfg.device)
    data = build_data(cfg, data_root)
    model = build_model(cfg, data.model_kwargs).to(device)
    if t_cfg.init_from and saved is None:
        _init_from(model, t_cfg.init_from)
    changed = check_same_config(saved["config"], to_dict(cfg), out / ckpt.LAST) if saved is not None else []
    if dist.main:
        save_yaml(to_dict(cfg), out / "config.yaml")
    steps_per_epoch, total_steps = _budget(cfg, data, dist.world)
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, cfg.sched, total_steps, steps_per_epoch)
    amp, use_scaler = autocast_for(device, t_cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    runner = dist.wrap(LossModule(model), device)
    ema = None
    if t_cfg.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t_cfg.ema_decay), use_buffers=True)
    log = MetricsLog(out, dist.main, int(saved["pos"]["step"]) if saved is not None else None)
    run = Run(cfg=cfg, out=out, dist=dist, device=device, data=data, model=model, runner=runner, opt=opt,
              sched=sched, scaler=scaler, ema=ema, amp=amp, steps_per_epoch=steps_per_epoch,
              total_steps=total_steps, state=TrainState(), log=log)
    if saved is not None:
        _restore(run, saved, changed)
    return run


def _init_from(model: torch.nn.Module, path: str) -> None:
    """Weights only: a fresh optimizer, schedule and step count."""
    init = ckpt.load(path)
    if "model" not in init:
        raise ConfigError(f"trainer.init_from={path}: expected a training checkpoint with model weights")
    try:
        model.load_state_dict(init["model"])
    except RuntimeError as e:  # torch's message: a header line, then the mismatches
        why = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1]
        raise ConfigError(f"trainer.init_from={path}: its weights do not fit this model ({why})") from None


def _budget(cfg: RunConfig, data: DataBundle, world: int) -> tuple[int, int]:
    """(steps per epoch, total steps) of the run."""
    t_cfg = cfg.trainer
    n, gbs = len(data.split("train")), data.batch_size
    if gbs % world:
        raise ConfigError(f"data.batch_size={gbs} must be divisible by the number of processes ({world})")
    steps_per_epoch = t_cfg.steps_per_epoch or len(batch_plan(n, gbs, data.shuffle, data.drop_last, t_cfg.seed, 0))
    if steps_per_epoch == 0:
        raise ConfigError(f"the training split has {n} samples: too few for one batch of {gbs}")
    total_steps = steps_per_epoch * t_cfg.max_epochs
    if t_cfg.max_steps:
        total_steps = min(total_steps, t_cfg.max_steps)
    return steps_per_epoch, total_steps


def _restore(run: Run, saved: dict[str, Any], changed: list[str]) -> None:
    """Continue from ``last.pt``; a changed budget (``MAY_CHANGE``) re-opens a finished run and
    lays the LR schedule over the new total."""
    fresh = run.sched.state_dict()
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optim"])
    run.sched.load_state_dict(saved["sched"])
    if changed:  # OneCycleLR keeps its length in its state: take the new one
        for k in ("total_steps", "_schedule_phases"):
            if k in fresh:
                setattr(run.sched, k, fresh[k])
    run.scaler.load_state_dict(saved["scaler"])
    if run.ema is not None:
        if "ema" not in saved:
            raise ConfigError(f"--resume: {run.out / ckpt.LAST} was written without trainer.ema_decay; "
                              "resume with the same trainer settings")
        run.ema.load_state_dict(saved["ema"])
    run.state = TrainState.from_dict(saved["pos"])
    if any(k in MAY_CHANGE and k != "trainer.log_every_s" for k in changed):
        run.state.done = False
    ckpt.set_rng_state(saved["rng"])
    run.resumed = True
    run.last_eval_step = run.state.step


def _progress(run: Run, show: bool) -> Progress:
    """The run's progress: a bar on a TTY, else a line every trainer.log_every_s (core.progress)."""
    t_cfg = run.cfg.trainer
    deadline = time.monotonic() + 60 * t_cfg.max_minutes - run.state.elapsed if t_cfg.max_minutes else None
    name = Path(run.cfg.recipe).stem if run.cfg.recipe else model_name(run.cfg)
    return Progress(run.total_steps, name, unit="step", every_s=t_cfg.log_every_s, quiet=not show,
                    initial=run.state.step, deadline=deadline)
