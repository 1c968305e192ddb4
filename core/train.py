"""The one training loop for every domain: ``fit(cfg, out_dir)``.

Models provide ``loss(batch) -> (loss, logs)``; domains provide
``evaluate(model, data, split, cfg) -> metrics``. ``fit`` owns everything else:

- device selection (CUDA if present, else CPU) and AMP (bf16 autocast on CUDA by default);
- the optimizer and LR schedule (``core.optim``), gradient clipping;
- validation every ``eval_every`` epochs (or ``eval_every_steps``), early stopping and
  best-checkpoint selection on the validation split only; the test split is evaluated
  once, at the end, from ``best.pt``;
- atomic checkpoints (``last.pt``, ``best.pt``) that hold everything needed to resume;
  ``resume=True`` continues a killed run and ends bit-identical (on CPU) to an
  uninterrupted one: the batch order of each epoch is a function of (seed, epoch), the
  position within the epoch is saved, and so are all RNG states;
- progress on stderr (``core.progress``, off with ``quiet``): a tqdm bar on a TTY, else one
  line every ``trainer.log_every_s`` seconds (step, epoch, mean loss, lr, steps/s, ETA); every
  validation and the final test print their metrics as one line either way;
- ``metrics.csv`` (long format: step, epoch, time_s, name, value), TensorBoard, ``results.json``;
- optional weight averaging (``trainer.ema_decay``): an exponential moving average of the
  parameters and buffers (``torch.optim.swa_utils.AveragedModel``), updated after every
  optimizer step; validation, ``best.pt`` and the test use the averaged weights;
- a non-finite loss stops the run, keeps the last good checkpoint and raises
  :class:`TrainingError` (exit code 1 in the CLI);
- multi-process data parallel under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU): every
  process sees the same global batch order and takes an equal slice of each global batch.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import __version__
from .config import from_dict, save_yaml, to_dict
from .data import DataBundle, from_plain, to_plain
from .domain import get_domain
from .errors import ConfigError, TrainingError
from .optim import build_optimizer, build_scheduler
from .progress import Progress, announce, fmt_duration
from .recipe import RunConfig, resolve
from .registry import get_dataset, get_model


# ----------------------------------------------------------------------------- building
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


def build_data(cfg: RunConfig, data_root: str | Path | None = None) -> DataBundle:
    entry = get_dataset(cfg.data["name"])
    dcfg = from_dict(entry.config, {k: v for k, v in cfg.data.items() if k != "name"}, where="data")
    return entry.builder(dcfg, data_root)


def build_model(cfg: RunConfig, model_kwargs: dict[str, Any] | None = None) -> torch.nn.Module:
    """Build the model; fields the data supplies (``model_kwargs``) override the recipe's."""
    entry = get_model(cfg.model["name"])
    fields = {k: v for k, v in cfg.model.items() if k != "name"}
    fields.update(model_kwargs or {})
    cfg.model = {"name": entry.name, **to_dict(from_dict(entry.config, fields, where="model"))}
    return entry.builder(from_dict(entry.config, fields, where="model"))


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        out = [to_device(v, device) for v in batch]
        return type(batch)(out) if not hasattr(batch, "_fields") else type(batch)(*out)
    return batch


def _autocast(device: torch.device, amp: str):
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext(), False
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16), True
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.float16), True
    return torch.autocast(device.type, dtype=torch.bfloat16), False


# ----------------------------------------------------------------------------- distributed
class _Dist:
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
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)])
        torch.distributed.broadcast(t, 0)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


class _LossModule(torch.nn.Module):
    """Lets DDP wrap ``model.loss`` (DDP synchronises gradients of what ``forward`` runs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


# ----------------------------------------------------------------------------- logging
class _Log:
    def __init__(self, out: Path, main: bool, resume_step: int | None):
        self.out, self.main, self.tb = out, main, None
        self.path = out / "metrics.csv"
        if not main:
            return
        if resume_step is not None and self.path.exists():  # drop rows the killed run wrote after its checkpoint
            with open(self.path, newline="") as f:
                rows = [r for r in csv.reader(f)]
            keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= resume_step]
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerows(keep)
        elif resume_step is None or not self.path.exists():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(["step", "epoch", "time_s", "name", "value"])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        except Exception as e:  # tensorboard missing or broken: CSV still works
            print(f"ostinato: TensorBoard logging off ({type(e).__name__})", file=sys.stderr)

    def write(self, step: int, epoch: int, t: float, metrics: dict[str, float]) -> None:
        if not self.main or not metrics:
            return
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            for k, v in metrics.items():
                w.writerow([step, epoch, f"{t:.2f}", k, f"{float(v):.6g}"])
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------- fit
def _batch_plan(n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int, epoch: int) -> list[list[int]]:
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    plan = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and plan and len(plan[-1]) < batch_size:
        plan.pop()
    return plan


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best if mode == "min" else value > best


def evaluate_split(model: torch.nn.Module, data: DataBundle, split: str, cfg: RunConfig) -> dict[str, float]:
    dom = get_domain(cfg.domain)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = dom.evaluate(model, data, split, cfg)
    model.train(was_training)
    return {k: float(v) for k, v in out.items()}


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def _progress(cfg: RunConfig, total_steps: int, pos: dict[str, Any], show: bool) -> Progress:
    """The run's progress: a bar on a TTY, else a line every trainer.log_every_s (core.progress)."""
    t_cfg = cfg.trainer
    deadline = time.monotonic() + 60 * t_cfg.max_minutes - pos["elapsed"] if t_cfg.max_minutes else None
    name = Path(cfg.recipe).stem if cfg.recipe else cfg.model["name"]
    return Progress(total_steps, name, unit="step", every_s=t_cfg.log_every_s, quiet=not show,
                    initial=pos["step"], deadline=deadline)


def fit(
    cfg: RunConfig,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; returns the contents of ``results.json``."""
    t_cfg = cfg.trainer
    out = Path(out_dir)
    dist = _Dist(t_cfg.device)
    device = dist.device(t_cfg.device)
    if t_cfg.threads:
        torch.set_num_threads(t_cfg.threads)
    seed_everything(t_cfg.seed)
    if t_cfg.ema_decay and not 0.0 < t_cfg.ema_decay < 1.0:  # before the data and model are built
        raise ConfigError(f"trainer.ema_decay={t_cfg.ema_decay}: expected 0 (off) or a decay in (0, 1)")

    state = None
    if resume:
        if not (out / "last.pt").exists():
            raise ConfigError(f"--resume: {out / 'last.pt'} does not exist; start without --resume")
        state = ckpt.load(out / "last.pt")
    elif dist.main and (out / "last.pt").exists():
        raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")

    data = build_data(cfg, data_root)
    model = build_model(cfg, data.model_kwargs).to(device)
    if t_cfg.init_from and state is None:  # weights only: a fresh optimizer, schedule and step count
        init = ckpt.load(t_cfg.init_from)
        if "model" not in init:
            raise ConfigError(f"trainer.init_from={t_cfg.init_from}: expected a training checkpoint with model weights")
        try:
            model.load_state_dict(init["model"])
        except RuntimeError as e:  # torch's message: a header line, then the mismatches
            why = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1]
            raise ConfigError(f"trainer.init_from={t_cfg.init_from}: its weights do not fit this model ({why})") from None
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(to_dict(cfg), out / "config.yaml")

    train_ds = data.split("train")
    n = len(train_ds)
    gbs = data.batch_size
    if gbs % dist.world:
        raise ConfigError(f"data.batch_size={gbs} must be divisible by the number of processes ({dist.world})")
    plan0 = _batch_plan(n, gbs, data.shuffle, data.drop_last, t_cfg.seed, 0)
    steps_per_epoch = t_cfg.steps_per_epoch or len(plan0)
    if steps_per_epoch == 0:
        raise ConfigError(f"the training split has {n} samples: too few for one batch of {gbs}")
    total_steps = steps_per_epoch * t_cfg.max_epochs
    if t_cfg.max_steps:
        total_steps = min(total_steps, t_cfg.max_steps)

    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, cfg.sched, total_steps, steps_per_epoch)
    autocast, use_scaler = _autocast(device, t_cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    runner: torch.nn.Module = _LossModule(model)
    if dist.enabled:
        runner = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )

    ema = None
    if t_cfg.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t_cfg.ema_decay), use_buffers=True)
    eval_model = ema.module if ema is not None else model  # what is validated, saved as best and tested

    pos = {"epoch": 0, "batch": 0, "step": 0, "best": None, "best_step": -1, "bad": 0, "elapsed": 0.0, "done": False}
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            if "ema" not in state:
                raise ConfigError(f"--resume: {out / 'last.pt'} was written without trainer.ema_decay; resume with the same trainer settings")
            ema.load_state_dict(state["ema"])
        pos.update(state["pos"])
        ckpt.set_rng_state(state["rng"])
    log = _Log(out, dist.main, pos["step"] if state is not None else None)

    # what inference needs without the data (scalers, item maps, ...): in every checkpoint
    run_info = {"inference": to_plain(data.inference), "model_kwargs": to_plain(data.model_kwargs)}

    def snapshot() -> dict[str, Any]:
        snap = {
            "model": model.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(),
            "scaler": scaler.state_dict(), "pos": dict(pos), "rng": ckpt.rng_state(),
            "config": to_dict(cfg), "version": __version__, **run_info,
        }
        if ema is not None:
            snap["ema"] = ema.state_dict()
        return snap

    def epochs_done() -> float:  # fractional: 1.50 = halfway through the second epoch
        return pos["epoch"] + pos["batch"] / steps_per_epoch

    def validate() -> bool:
        """Validate, update best/early stopping, write checkpoints; True = stop early."""
        stop = False
        if dist.main and data.val is not None:
            metrics = evaluate_split(eval_model, data, "val", cfg)
            log.write(pos["step"], pos["epoch"], pos["elapsed"], {f"val/{k}": v for k, v in metrics.items()})
            if t_cfg.monitor not in metrics:
                raise ConfigError(
                    f"trainer.monitor={t_cfg.monitor!r} is not among the validation metrics: {', '.join(metrics)}"
                )
            value = metrics[t_cfg.monitor]
            best = _improved(value, pos["best"], t_cfg.mode) and math.isfinite(value)
            prog.write(f"[{prog.desc}] val step {pos['step']} epoch {epochs_done():.2f}: {_metrics_text(metrics)}"
                       + (" (best)" if best else ""))
            if not math.isfinite(value):
                raise TrainingError(f"validation {t_cfg.monitor} is {value} at step {pos['step']}; stopped")
            if _improved(value, pos["best"], t_cfg.mode):
                pos.update(best=value, best_step=pos["step"], bad=0)
                ckpt.save({"model": eval_model.state_dict(), "config": to_dict(cfg), "step": pos["step"],
                           "val": metrics, "version": __version__, **run_info}, out / "best.pt")
            else:
                pos["bad"] += 1
                stop = bool(t_cfg.patience) and pos["bad"] >= t_cfg.patience
            ckpt.save(snapshot(), out / "last.pt")
        elif dist.main:
            ckpt.save(snapshot(), out / "last.pt")
        dist.barrier()
        return dist.broadcast_flag(stop)

    prog = _progress(cfg, total_steps, pos, show=dist.main and not quiet)
    model.train()
    t0 = time.time() - pos["elapsed"]
    stop = pos["done"]
    running: dict[str, float] = {}
    last_eval_step = pos["step"] if state is not None else -1
    while not stop and pos["epoch"] < t_cfg.max_epochs:
        epoch = pos["epoch"]
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        plan = _batch_plan(n, gbs, data.shuffle, data.drop_last, t_cfg.seed, epoch)
        if t_cfg.steps_per_epoch:  # cycle or cut the epoch to a fixed number of steps
            plan = [plan[i % len(plan)] for i in range(t_cfg.steps_per_epoch)]
        shards = [b[dist.rank :: dist.world] for b in plan[pos["batch"] :]]
        # a private generator: creating the loader must not draw from the global RNG, or a
        # run resumed mid-epoch would see different dropout masks than an uninterrupted one
        loader = torch.utils.data.DataLoader(
            train_ds, batch_sampler=shards, collate_fn=data.collate, num_workers=t_cfg.num_workers,
            generator=torch.Generator().manual_seed(t_cfg.seed + epoch),
        )
        for batch in loader:
            batch = to_device(batch, device)
            with autocast:
                loss, logs = runner(batch)
            if not torch.isfinite(loss.detach()).all():
                last = out / "last.pt"
                where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
                raise TrainingError(f"non-finite loss ({loss.item()}) at step {pos['step'] + 1}; stopped, {where}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t_cfg.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            sched.step()
            pos["step"] += 1
            pos["batch"] += 1
            pos["elapsed"] = time.time() - t0
            loss_value = loss.item()
            running["train/loss"] = running.get("train/loss", 0.0) + loss_value
            for k, v in (logs or {}).items():
                if k != "loss":  # train/loss is the optimised loss itself, logged above
                    running[f"train/{k}"] = running.get(f"train/{k}", 0.0) + float(v)
            running["_n"] = running.get("_n", 0) + 1
            prog.update(1, {"epoch": f"{epochs_done():.2f}", "loss": loss_value, "lr": f"{opt.param_groups[0]['lr']:.1e}"}, mean=("loss",))
            if pos["step"] % max(1, t_cfg.log_every_steps) == 0:
                k = running.pop("_n")
                log.write(pos["step"], epoch, pos["elapsed"],
                          {**{a: b / k for a, b in running.items()}, "train/lr": opt.param_groups[0]["lr"]})
                running = {}
            out_of_budget = (t_cfg.max_steps and pos["step"] >= t_cfg.max_steps) or (
                t_cfg.max_minutes and pos["elapsed"] >= 60 * t_cfg.max_minutes
            )
            out_of_budget = dist.broadcast_flag(bool(out_of_budget))
            if t_cfg.eval_every_steps and pos["step"] % t_cfg.eval_every_steps == 0:
                stop = validate()
                last_eval_step = pos["step"]
            elif t_cfg.ckpt_every_steps and pos["step"] % t_cfg.ckpt_every_steps == 0 and dist.main:
                ckpt.save(snapshot(), out / "last.pt")
            if stop or out_of_budget:
                stop = True
                break
        else:  # the epoch ran to its end
            pos["epoch"] += 1
            pos["batch"] = 0
            if not t_cfg.eval_every_steps and pos["epoch"] % max(1, t_cfg.eval_every) == 0:
                stop = validate()
                last_eval_step = pos["step"]
    pos["done"] = True
    prog.close(summary=True)
    if last_eval_step != pos["step"] or not (out / "best.pt").exists():
        validate()
    elif dist.main:
        ckpt.save(snapshot(), out / "last.pt")

    results: dict[str, Any] = {"steps": pos["step"], "epochs": pos["epoch"], "train_time_s": round(pos["elapsed"], 2),
                               "best_step": pos["best_step"], "monitor": t_cfg.monitor}
    if dist.main:
        if (out / "best.pt").exists():
            best = ckpt.load(out / "best.pt", map_location=device)
            results["val"] = best.get("val", {})
            model.load_state_dict(best["model"])
        if t_cfg.test_at_end and data.test is not None:
            test = evaluate_split(model, data, "test", cfg)
            results["test"] = test
            prog.write(f"[{prog.desc}] test (best step {pos['best_step']}): {_metrics_text(test)}")
            log.write(pos["step"], pos["epoch"], pos["elapsed"], {f"test/{k}": v for k, v in test.items()})
        (out / "results.json").write_text(json.dumps(results, indent=2))
        announce(f"{cfg.recipe or cfg.model['name']} done: {pos['step']} steps in {fmt_duration(pos['elapsed'])}"
                 + "".join(f"; {k} {_metrics_text(results[k])}" for k in ("val", "test") if k in results))
    log.close()
    dist.barrier()
    return results


# ----------------------------------------------------------------------------- loading runs
def find_checkpoint(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).exists():
                return p / name
        raise ConfigError(f"{p} holds no best.pt or last.pt; expected a run directory written by `ostinato train`")
    if not p.exists():
        raise ConfigError(f"checkpoint {p} does not exist")
    return p


def load_run(
    path: str | Path,
    data_root: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    build_data_too: bool = True,
    device: str = "cpu",
    rebuild_if_old: bool = False,
) -> tuple[torch.nn.Module, RunConfig, DataBundle | None]:
    """Load a trained run (a run directory or a .pt file): (model in eval mode, config, data).

    The model is built from the checkpoint alone (its config and saved ``model_kwargs``).
    ``data`` is, with ``build_data_too``, the dataset built from the config (every split;
    ``eval`` needs it), except for a domain whose ``evaluate`` needs no data
    (``Domain.eval_needs_data=False``); otherwise, and for such a domain, it is the
    checkpoint's saved bundle: a :class:`DataBundle` without splits whose ``inference``
    holds what the verbs need (scalers, item maps, ...), so a run folder copied elsewhere
    is enough. A checkpoint written before bundles were saved gives ``None`` then, or the
    rebuilt data with ``rebuild_if_old`` (which needs the training data, as it always did).
    """
    state = ckpt.load(find_checkpoint(path), map_location=device)
    if "config" not in state:
        raise ConfigError(f"{path}: not an ostinato checkpoint (no config inside)")
    cfg = resolve(state["config"], list(overrides))
    saved = None
    if "inference" in state:
        saved = DataBundle(batch_size=int(cfg.data.get("batch_size") or 32), model_kwargs=dict(state.get("model_kwargs") or {}),
                           inference=from_plain(state["inference"]))
    data_free = saved is not None and not get_domain(cfg.domain).eval_needs_data
    if (build_data_too and not data_free) or (saved is None and rebuild_if_old):
        data = build_data(cfg, data_root)
    else:
        data = saved
    model = build_model(cfg, data.model_kwargs if data is not None else None)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, cfg, data
