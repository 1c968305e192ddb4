"""Building a run's parts from its typed config (data, model) and evaluating a split.

Used by the training loop (:mod:`ostinato.core.fit`) and by :func:`ostinato.core.train.load_run`;
it imports neither, so the three form no import cycle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .data import DataBundle
from .domain import get_domain
from .recipe import RunConfig, merge_data_fields
from .registry import get_dataset, get_model


def build_data(cfg: RunConfig, data_root: str | Path | None = None) -> DataBundle:
    return get_dataset(cfg.data_name).builder(cfg.data, data_root)


def build_model(cfg: RunConfig, model_kwargs: dict[str, Any] | None = None) -> torch.nn.Module:
    """Build the model from ``cfg.model``, after merging the fields the data decides
    (``model_kwargs``) into it (:func:`~ostinato.core.recipe.merge_data_fields`: a recipe value
    that contradicts the data is a ConfigError). The builder gets ``cfg.model`` itself and never
    changes it, so ``cfg`` is exactly what was built."""
    merge_data_fields(cfg, model_kwargs)
    return get_model(cfg.model_name).builder(cfg.model)


def evaluate_split(model: torch.nn.Module, data: DataBundle, split: str, cfg: RunConfig) -> dict[str, float]:
    dom = get_domain(cfg.domain)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = dom.evaluate(model, data, split, cfg)
    model.train(was_training)
    return {k: float(v) for k, v in out.items()}
