"""Building a run's parts from its config, evaluating a split, loading a trained run.

The training loop itself, ``fit(cfg, out_dir)``, lives in :mod:`ostinato.core.fit` (its
steps: setup, train_step, run_epoch, validate, checkpoint, finish) and is re-exported here:
``from ostinato.core.train import fit`` keeps working. Device helpers come from
:mod:`ostinato.core.device`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .data import DataBundle, from_plain
from .device import autocast as _autocast, seed_everything, select_device, to_device  # noqa: F401 (re-exported)
from .domain import get_domain
from .errors import ConfigError
from .recipe import RunConfig, merge_data_fields, resolve
from .registry import get_dataset, get_model


# ----------------------------------------------------------------------------- building
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

    The model is built from the checkpoint's saved config alone (the data-derived fields were
    merged into it before it was saved).
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
        saved = DataBundle(batch_size=int(getattr(cfg.data, "batch_size", None) or 32), model_kwargs=dict(state.get("model_kwargs") or {}),
                           inference=from_plain(state["inference"]))
    data_free = saved is not None and not get_domain(cfg.domain).eval_needs_data
    if (build_data_too and not data_free) or (saved is None and rebuild_if_old):
        data = build_data(cfg, data_root)
    else:
        data = saved
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, cfg, data


from .fit import fit  # noqa: E402,F401 (the loop; re-exported, imported last: fit.py imports this module lazily)
