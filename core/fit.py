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

The steps: :func:`fit` = lock the folder, :func:`setup` (data, model, optimizer, schedule,
scaler, EMA, resume or ``init_from``), :func:`run_epoch` (of :func:`train_step`), with
:func:`validate` and :func:`checkpoint` between, then :func:`finish` (test, ``results.json``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from . import checkpoint as ckpt
from .config import save_yaml, to_dict
from .data import DataBundle, to_plain
from .device import autocast as autocast_for, seed_everything, to_device
from .dist import Dist, LossModule
from .errors import ConfigError, TrainingError
from .optim import build_optimizer, build_scheduler
from .progress import Progress, announce, fmt_duration
from .recipe import RunConfig
from .resume import MAY_CHANGE, check_resumable, check_same_config, load_for_resume
from .runlock import RunLock
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
    sched: Any
    scaler: Any
    ema: Any  # AveragedModel or None
    amp: Any  # the autocast context
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


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as saved in ``config.yaml`` and the checkpoints."""
    as_dict = getattr(cfg, "to_dict", None)
    return as_dict() if callable(as_dict) else to_dict(cfg)


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
        stop = run.state.done or _out_of_budget(run)
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
    from .train import build_data, build_model  # train.py re-exports fit: import at call time

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


def _out_of_budget(run: Run) -> bool:
    t_cfg, s = run.cfg.trainer, run.state
    return bool((t_cfg.max_steps and s.step >= t_cfg.max_steps) or (t_cfg.max_minutes and s.elapsed >= 60 * t_cfg.max_minutes))


# ----------------------------------------------------------------------------- the loop
def _loader(run: Run) -> torch.utils.data.DataLoader:
    """The rest of the current epoch's batches, this process's slice of each."""
    t_cfg, data, s, dist = run.cfg.trainer, run.data, run.state, run.dist
    train_ds = data.split("train")
    if hasattr(train_ds, "set_epoch"):
        train_ds.set_epoch(s.epoch)
    plan = batch_plan(len(train_ds), data.batch_size, data.shuffle, data.drop_last, t_cfg.seed, s.epoch)
    if t_cfg.steps_per_epoch:  # cycle or cut the epoch to a fixed number of steps
        plan = [plan[i % len(plan)] for i in range(t_cfg.steps_per_epoch)]
    shards = [b[dist.rank :: dist.world] for b in plan[s.batch :]]
    # a private generator: creating the loader must not draw from the global RNG, or a
    # run resumed mid-epoch would see different dropout masks than an uninterrupted one
    return torch.utils.data.DataLoader(
        train_ds, batch_sampler=shards, collate_fn=data.collate, num_workers=t_cfg.num_workers,
        generator=torch.Generator().manual_seed(t_cfg.seed + s.epoch),
    )


def run_epoch(run: Run) -> bool:
    """Train the rest of the current epoch, validating and checkpointing on schedule; True = stop."""
    t_cfg, s = run.cfg.trainer, run.state
    for batch in _loader(run):
        train_step(run, batch)
        out_of_budget = run.dist.broadcast_flag(_out_of_budget(run))
        stop = False
        if t_cfg.eval_every_steps and s.step % t_cfg.eval_every_steps == 0:
            stop = validate(run)
        elif t_cfg.ckpt_every_steps and s.step % t_cfg.ckpt_every_steps == 0:
            checkpoint(run)
        if stop or out_of_budget:
            return True
    s.epoch += 1  # the epoch ran to its end
    s.batch = 0
    if not t_cfg.eval_every_steps and s.epoch % max(1, t_cfg.eval_every) == 0:
        return validate(run)
    return False


def train_step(run: Run, batch: Any) -> None:
    """One optimizer step (with AMP, clipping, EMA and the LR schedule) and its logging."""
    t_cfg, s = run.cfg.trainer, run.state
    batch = to_device(batch, run.device)
    with run.amp:
        loss, logs = run.runner(batch)
    if not torch.isfinite(loss.detach()).all():
        raise _diverged(run, loss)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if t_cfg.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), t_cfg.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.sched.step()
    s.step += 1
    s.batch += 1
    s.elapsed = time.time() - run.t0
    _log_step(run, loss.item(), logs or {})


def _log_step(run: Run, loss_value: float, logs: dict[str, Any]) -> None:
    """Progress, and a metrics row of the running means every ``trainer.log_every_steps``."""
    s, running, lr = run.state, run.running, run.opt.param_groups[0]["lr"]
    running["train/loss"] = running.get("train/loss", 0.0) + loss_value
    for k, v in logs.items():
        if k != "loss":  # train/loss is the optimised loss itself, logged above
            running[f"train/{k}"] = running.get(f"train/{k}", 0.0) + float(v)
    running["_n"] = running.get("_n", 0) + 1
    assert run.prog is not None
    run.prog.update(1, {"epoch": f"{run.epochs_done():.2f}", "loss": loss_value, "lr": f"{lr:.1e}"}, mean=("loss",))
    if s.step % max(1, run.cfg.trainer.log_every_steps) == 0:
        k = running.pop("_n")
        run.log.write(s.step, s.epoch, s.elapsed, {**{a: b / k for a, b in running.items()}, "train/lr": lr})
        running.clear()


def _diverged(run: Run, loss: torch.Tensor) -> TrainingError:
    """A non-finite loss from the weights of step ``state.step``: roll ``last.pt`` back to the
    newest checkpoint from before them and say which step it holds."""
    s = run.state
    where = "see the main process for the checkpoint kept"
    if run.dist.main:
        kept = ckpt.roll_back(run.out, s.step)
        where = (f"the last good checkpoint is {run.out / ckpt.LAST} (step {kept})" if kept is not None else
                 "no checkpoint from before the divergence exists; start again with other settings")
    return TrainingError(f"non-finite loss ({loss.item()}) at step {s.step + 1}; stopped, {where}")


# ----------------------------------------------------------------------------- validation, checkpoints, end
def checkpoint(run: Run) -> None:
    """Write ``last.pt`` (the main process only)."""
    if run.dist.main:
        ckpt.save_last(run.snapshot(), run.out)


def validate(run: Run) -> bool:
    """Validate, update best/early stopping, write checkpoints; True = stop early."""
    stop = False
    if run.dist.main and run.data.val is not None:
        stop = _judge(run, _evaluate(run, run.eval_model, "val"))
    checkpoint(run)
    run.last_eval_step = run.state.step
    run.dist.barrier()
    return run.dist.broadcast_flag(stop)


def _evaluate(run: Run, model: torch.nn.Module, split: str) -> dict[str, float]:
    from .train import evaluate_split

    s = run.state
    metrics = evaluate_split(model, run.data, split, run.cfg)
    run.log.write(s.step, s.epoch, s.elapsed, {f"{split}/{k}": v for k, v in metrics.items()})
    return metrics


def _judge(run: Run, metrics: dict[str, float]) -> bool:
    """Early stopping and best selection on one validation; writes ``best.pt``; True = stop."""
    t_cfg, s = run.cfg.trainer, run.state
    if t_cfg.monitor not in metrics:
        raise ConfigError(f"trainer.monitor={t_cfg.monitor!r} is not among the validation metrics: {', '.join(metrics)}")
    value = metrics[t_cfg.monitor]
    best = _improved(value, s.best, t_cfg.mode) and math.isfinite(value)
    assert run.prog is not None
    run.prog.write(f"[{run.prog.desc}] val step {s.step} epoch {run.epochs_done():.2f}: {_metrics_text(metrics)}"
                   + (" (best)" if best else ""))
    if not math.isfinite(value):
        raise TrainingError(f"validation {t_cfg.monitor} is {value} at step {s.step}; stopped")
    if _improved(value, s.best, t_cfg.mode):
        s.best, s.best_step, s.bad = value, s.step, 0
        ckpt.save({"model": run.eval_model.state_dict(), "config": to_dict(run.cfg), "step": s.step,
                   "val": metrics, **run.extra()}, run.out / "best.pt")
        return False
    s.bad += 1
    return bool(t_cfg.patience) and s.bad >= t_cfg.patience


def finish(run: Run) -> dict[str, Any]:
    """Final validation (unless just done) and checkpoint, the test of ``best.pt``, ``results.json``."""
    s, out, t_cfg = run.state, run.out, run.cfg.trainer
    s.done = True
    assert run.prog is not None
    run.prog.close(summary=True)
    if run.last_eval_step != s.step or not (out / "best.pt").exists():
        validate(run)
    else:
        checkpoint(run)
    results: dict[str, Any] = {"steps": s.step, "epochs": s.epoch, "train_time_s": round(s.elapsed, 2),
                               "best_step": s.best_step, "monitor": t_cfg.monitor}
    if run.dist.main:
        (out / ckpt.PREVIOUS).unlink(missing_ok=True)  # only a diverging run needs it
        if (out / "best.pt").exists():
            best = ckpt.load(out / "best.pt", map_location=run.device)
            results["val"] = best.get("val", {})
            run.model.load_state_dict(best["model"])
        if t_cfg.test_at_end and run.data.test is not None:
            results["test"] = test = _evaluate(run, run.model, "test")
            run.prog.write(f"[{run.prog.desc}] test (best step {s.best_step}): {_metrics_text(test)}")
        (out / "results.json").write_text(json.dumps(results, indent=2))
        announce(f"{run.cfg.recipe or model_name(run.cfg)} done: {s.step} steps in {fmt_duration(s.elapsed)}"
                 + "".join(f"; {k} {_metrics_text(results[k])}" for k in ("val", "test") if k in results))
    run.log.close()
    run.dist.barrier()
    return results
