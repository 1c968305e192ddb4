"""The steps of the training loop (see ``core.fit``): :func:`run_epoch` of :func:`train_step`,
:func:`validate` and :func:`checkpoint` on schedule, :func:`finish` at the end."""
from __future__ import annotations

import json
import math
import time
from typing import Any

import torch

from . import checkpoint as ckpt
from .build import evaluate_split
from .config import to_dict
from .device import to_device
from .errors import ConfigError, TrainingError
from .progress import announce, fmt_duration
from .runstate import Run, _improved, _metrics_text, batch_plan, model_name


def out_of_budget(run: Run) -> bool:
    t_cfg, s = run.cfg.trainer, run.state
    return bool((t_cfg.max_steps and s.step >= t_cfg.max_steps) or (t_cfg.max_minutes and s.elapsed >= 60 * t_cfg.max_minutes))


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
        spent = run.dist.broadcast_flag(out_of_budget(run))
        stop = False
        if t_cfg.eval_every_steps and s.step % t_cfg.eval_every_steps == 0:
            stop = validate(run)
        elif t_cfg.ckpt_every_steps and s.step % t_cfg.ckpt_every_steps == 0:
            checkpoint(run)
        if stop or spent:
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
