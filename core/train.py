"""Loading a trained run; re-exports the builders (:mod:`ostinato.core.build`) and the loop.

The training loop itself, ``fit(cfg, out_dir)``, lives in :mod:`ostinato.core.fit` (its
steps: setup, train_step, run_epoch, validate, checkpoint, finish) and is re-exported here:
``from ostinato.core.train import fit`` keeps working. Device helpers come from
:mod:`ostinato.core.device`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoint as ckpt
from .build import build_data, build_model, evaluate_split  # noqa: F401 (re-exported)
from .data import DataBundle, from_plain
from .device import autocast as _autocast, seed_everything, select_device, to_device  # noqa: F401 (re-exported)
from .domain import get_domain
from .errors import ConfigError
from .fit import fit  # noqa: F401 (the loop, re-exported)
from .recipe import RunConfig, resolve


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

