"""Leave-one-out evaluation: the SASRec paper's sampled-100 protocol and full ranking.

**Sampled** (SASRec paper and code): up to ``max_users`` (10,000) evaluated users drawn once
with the fixed ``seed``; for each, the true item plus ``n_negatives`` (100) items drawn
uniformly from the items the user has not interacted with (``exclude="history"``: none of
the user's items, including later ones; ``exclude="train"`` reproduces the TF code, which
only avoids the train items, so the true test item can be drawn as a negative). For test,
the validation item is appended to the input. The paper's code draws fresh users and
negatives at each call; here they are fixed by ``seed`` so that numbers repeat.

**Full**: the true item is ranked against every item; items already in the user's input
history are removed from the candidates (the true item is never removed, even if the user
saw it before). All evaluated users unless ``full_max_users`` is set.

Metric keys are ``{protocol}_{metric}@{k}``, e.g. ``sampled_ndcg@10`` and ``full_hr@10``
(conventions in ``ostinato.recsys.metrics``), plus ``sampled_users``/``full_users`` (users
ranked) and ``eval_s`` (seconds the evaluation took).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ostinato.core.data import index_rng
from ostinato.core.errors import ConfigError
from ostinato.core.measure import model_device
from ostinato.core.progress import track

from .data.sequences import LeaveOneOut, gather_segments, gather_windows, sample_excluding
from .metrics import rank_of_true, ranking_metrics

_SPLIT_CODE = {"val": 1, "test": 2}


@dataclass
class RecEvalConfig:
    protocol: Literal["sampled", "full", "both"] = "both"
    val_protocol: Literal["same", "sampled", "full", "both"] = "same"  # on the val split (model selection)
    n_negatives: int = 100
    max_users: int = 10000  # sampled protocol: users drawn (paper: 10,000); 0 = all
    full_max_users: int = 0  # full protocol: 0 = all evaluated users
    exclude: Literal["history", "train"] = "history"
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    seed: int = 0
    batch_size: int = 0  # 0: the dataset's eval_batch_size

    def validate(self) -> None:
        if self.n_negatives < 1 or self.max_users < 0 or self.full_max_users < 0:
            raise ConfigError("eval.n_negatives must be >= 1 and eval.max_users/full_max_users >= 0")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"eval.ks: expected positive cut-offs, got {self.ks}")


def _pick_users(loo: LeaveOneOut, limit: int, seed: int, code: int) -> np.ndarray:
    users = loo.eval_users()
    if limit and len(users) > limit:
        users = np.sort(np.random.default_rng([seed, code]).choice(users, limit, replace=False))
    return users


@torch.no_grad()
def sampled_ranks(model, loo: LeaveOneOut, split: str, maxlen: int, ecfg: RecEvalConfig, batch_size: int) -> np.ndarray:
    key = ("sampled", split, maxlen, ecfg.n_negatives, ecfg.max_users, ecfg.exclude, ecfg.seed)
    if key not in loo.cache:  # the same users and negatives at every validation: compute once
        code = _SPLIT_CODE[split]
        users = _pick_users(loo, ecfg.max_users, ecfg.seed, code)
        target = loo.target(users, split)
        starts, ends = loo.history(users, split)
        ex_end = loo.data.offsets[users + 1] if ecfg.exclude == "history" else loo.train_end[users]
        rows, excl = gather_segments(loo.data.items, starts, ex_end)
        rngs = [index_rng(ecfg.seed, 1000 + code, int(u)) for u in users]  # per user: independent of who else is drawn
        _, neg = sample_excluding(rngs, np.full(len(users), ecfg.n_negatives), rows, excl, loo.n_items)
        cand = np.concatenate([target[:, None], neg.reshape(len(users), ecfg.n_negatives)], axis=1)  # (U, 1 + n)
        loo.cache[key] = (users, cand, gather_windows(loo.data.items, starts, ends, maxlen))  # seq: (U, L)
    users, cand, seq = loo.cache[key]
    dev, out = model_device(model), []
    for i in track(range(0, len(users), batch_size)):  # progress under `ostinato eval`
        s = model.score(torch.from_numpy(seq[i:i + batch_size]).to(dev),
                        torch.from_numpy(cand[i:i + batch_size]).to(dev)).float()  # (B, 1 + n)
        out.append(rank_of_true(s[:, 0], s[:, 1:]).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def full_ranks(model, loo: LeaveOneOut, split: str, maxlen: int, ecfg: RecEvalConfig, batch_size: int) -> np.ndarray:
    users = _pick_users(loo, ecfg.full_max_users, ecfg.seed, 10 + _SPLIT_CODE[split])
    target = loo.target(users, split)
    starts, ends = loo.history(users, split)
    dev, out = model_device(model), []
    for i in track(range(0, len(users), batch_size)):  # progress under `ostinato eval`
        s_, e_, t_ = starts[i:i + batch_size], ends[i:i + batch_size], torch.from_numpy(target[i:i + batch_size]).to(dev)
        seq = torch.from_numpy(gather_windows(loo.data.items, s_, e_, maxlen)).to(dev)
        sc = model.score_all(seq).float()  # (B, n_items + 1), column 0 = -inf
        ar = torch.arange(len(t_), device=dev)
        true = sc[ar, t_].clone()
        rows, seen = gather_segments(loo.data.items, s_, e_)
        sc[torch.from_numpy(rows).to(dev), torch.from_numpy(seen).to(dev)] = float("-inf")  # seen items
        sc[ar, t_] = float("-inf")  # the true item is compared, not counted
        out.append(rank_of_true(true, sc).cpu())
    return torch.cat(out).numpy()


def eval_config(cfg) -> RecEvalConfig:
    """The run's typed eval section (the defaults without a run config)."""
    return cfg.eval if cfg is not None else RecEvalConfig()


def evaluate(model, data, split: str, cfg=None) -> dict[str, float]:
    """The recsys domain evaluator: {protocol_metric@k: value} on ``split`` ("val" or "test")."""
    if split not in _SPLIT_CODE:
        raise ConfigError(f"split {split!r}: expected 'val' or 'test'")
    ecfg = eval_config(cfg)
    loo, maxlen = data.meta["loo"], data.meta["maxlen"]
    bs = ecfg.batch_size or data.eval_batch_size or 256
    protocol = ecfg.protocol if (split == "test" or ecfg.val_protocol == "same") else ecfg.val_protocol
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        if protocol in ("sampled", "both"):
            r = sampled_ranks(model, loo, split, maxlen, ecfg, bs)
            out.update({f"sampled_{k}": v for k, v in ranking_metrics(r, ecfg.ks).items()})
            out["sampled_users"] = float(len(r))
        if protocol in ("full", "both"):
            r = full_ranks(model, loo, split, maxlen, ecfg, bs)
            out.update({f"full_{k}": v for k, v in ranking_metrics(r, ecfg.ks).items()})
            out["full_users"] = float(len(r))
        out["eval_s"] = round(time.perf_counter() - t0, 3)
    finally:
        model.train(was_training)
    return out
