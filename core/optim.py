"""Optimizer and LR-schedule builders.

Per-parameter hints (set by the layer that owns the parameter):

- ``p._no_weight_decay = True``: the parameter goes into a group with weight decay 0
  (Mamba's ``A_log`` and ``D``);
- ``p._optim = {"lr": ..., "weight_decay": ...}``: the parameter gets its own group with
  these settings (S4's SSM parameters).
"""
from __future__ import annotations

import math

import torch

from .errors import ConfigError
from .recipe import OptimConfig, SchedConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    default, no_wd, special = [], [], {}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hint = getattr(p, "_optim", None)
        if hint:
            key = tuple(sorted(hint.items()))
            special.setdefault(key, []).append(p)
        elif getattr(p, "_no_weight_decay", False):
            no_wd.append(p)
        else:
            default.append(p)
    groups = []
    if default:
        groups.append({"params": default, "weight_decay": weight_decay})
    if no_wd:
        groups.append({"params": no_wd, "weight_decay": 0.0})
    for key, ps in special.items():
        groups.append({"params": ps, **dict(key)})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    # the fused (single-kernel) Adam is much cheaper per step on CPU and GPU; it is the same
    # algorithm rounded differently (not bit-equal to the foreach step); it needs floating-point
    # parameters on one device type
    params = [p for g in groups for p in g["params"]]
    fused = cfg.fused and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) and len(
        {p.device.type for p in params}) == 1
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: SchedConfig, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per optimizer step (see SchedConfig)."""
    total = max(1, total_steps)
    warm = max(0, cfg.warmup_steps)
    if cfg.name == "onecycle":
        max_lrs = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total, pct_start=cfg.pct_start)
    base = [g["lr"] for g in opt.param_groups]

    def factor(i: int):
        def f(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if cfg.name == "cosine":
                t = min(1.0, (step - warm) / max(1, total - warm))
                lo = cfg.min_lr / base[i] if base[i] > 0 else 0.0
                return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t))
            if cfg.name == "epoch_decay":
                return cfg.gamma ** (step // max(1, steps_per_epoch))
            return 1.0

        return f

    return torch.optim.lr_scheduler.LambdaLR(opt, [factor(i) for i in range(len(base))])
