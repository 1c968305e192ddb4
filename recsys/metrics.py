"""Ranking metrics for leave-one-out evaluation (one true item per user).

Convention (SASRec ``util.py``): ``rank`` is the 0-based position of the true item among the
candidates, best first. Ties count against the model: the rank is the number of *other*
candidates whose score is >= the true item's score, so a model that scores everything
equally gets the worst rank, never the best. Then, averaged over users:

- HR@k   = [rank < k]
- NDCG@k = [rank < k] / log2(rank + 2)   (one relevant item, so IDCG = 1)
- MRR@k  = [rank < k] / (rank + 1)

The sampled protocol ranks among 1 + 100 candidates (SASRec paper), the full protocol among
all items minus the user's already-seen ones; the two are not comparable (Krichene & Rendle,
KDD 2020).
"""
from __future__ import annotations

import numpy as np
import torch


def rank_of_true(true_scores: torch.Tensor, other_scores: torch.Tensor) -> torch.Tensor:
    """true_scores (B,), other_scores (B, C) -> (B,) number of others scoring >= the true item."""
    return (other_scores >= true_scores[:, None]).sum(1)


def ranking_metrics(ranks: np.ndarray, ks=(5, 10, 20)) -> dict[str, float]:
    """HR, NDCG and MRR at each k from 0-based ranks (see the module doc)."""
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    if not len(r):
        return out
    for k in ks:
        hit = r < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (r + 1.0), 0.0).mean())
    return out
