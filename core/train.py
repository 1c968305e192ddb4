"""Loading a trained run; re-exports the builders (:mod:`ostinato.core.build`) and the loop.

The training loop itself, ``fit(cfg, out_dir)``, lives in :mod:`ostinato.core.fit` (its
steps: setup, train_step, run_epoch, validate, checkpoint, finish) and is re-exported here:
``from ostinato.core.train import fit`` keeps working. Device helpers come from
:mod:`ostinato.core.device`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from . import checkpoint as ckpt
from .build import build_data, build_model, evaluate_split  # noqa: F401 (re-exported)
from .data import DataBundle, from_plain
from .device import autocast as _autocast, seed_everything, select_device, to_device  # noqa: F401 (re-exported)
from .domain import get_domain
from .errors import ConfigError
from .fit import fit  # noqa: F401 (the loop, re-exported)
from .pretrained import is_source, load_state
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
    if p.suffix not in (".pt", ".pth", ".ckpt"):  # a damaged .pt is a runtime failure (exit 1); this is usage
        with open(p, "rb") as f:
            head = f.read(4)
        if head[:4] != b"PK\x03\x04" and head[:1] != b"\x80":  # neither torch's zip format nor a pickle
            raise ConfigError(f"{p} is not a checkpoint; expected a run directory or a .pt written by `ostinato train`")
    return p


def check_run(config: dict, path: str | Path, expect_domain: str | None = None, verb: str = "",
              expect_model: tuple[Callable[[dict], bool], str] | None = None) -> None:
    """A verb's run is of its domain (and kind of model): else a one-line ConfigError naming
    the run, its domain and model, and what the verb expects."""
    domain = config.get("domain")
    model = config.get("model") or {}
    name = model.get("name") if isinstance(model, dict) else model
    who = f"{verb}: " if verb else ""
    if expect_domain is not None and domain != expect_domain:
        raise ConfigError(f"{who}{path} is {_a(domain)} run (model {name}); expected {_a(expect_domain)} run")
    if expect_model is not None and not expect_model[0](config):
        raise ConfigError(f"{who}{path} is {_a(domain)} run of model {name}; expected {expect_model[1]}")


def _a(word: object) -> str:
    return f"{'an' if str(word)[:1].lower() in 'aeiou' else 'a'} {word}"


def load_run(
    path: str | Path,
    data_root: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    build_data_too: bool = True,
    device: str = "cpu",
    rebuild_if_old: bool = False,
    expect_domain: str | None = None,
    verb: str = "",
    expect_model: tuple[Callable[[dict], bool], str] | None = None,
) -> tuple[torch.nn.Module, RunConfig, DataBundle | None]:
    """Load a trained run (a run directory or a .pt file) or a source of weights
    (``pretrained:<domain>/<name>``, a Hub-layout folder, ``hf:<owner>/<repo>``; see
    :mod:`ostinato.core.pretrained`): (model in eval mode, config, data).

    The model is built from the checkpoint's saved config alone (the data-derived fields were
    merged into it before it was saved).
    ``data`` is, with ``build_data_too``, the dataset built from the config (every split;
    ``eval`` needs it), except for a domain whose ``evaluate`` needs no data
    (``Domain.eval_needs_data=False``); otherwise, and for such a domain, it is the
    checkpoint's saved bundle: a :class:`DataBundle` without splits whose ``inference``
    holds what the verbs need (scalers, item maps, ...), so a run folder copied elsewhere
    is enough. A checkpoint written before bundles were saved gives ``None`` then, or the
    rebuilt data with ``rebuild_if_old`` (which needs the training data, as it always did).

    A domain verb names the domain it works on (``expect_domain``, ``verb``) and, where it
    needs a kind of model, ``expect_model = (predicate on the saved config dict, what it
    expects)``: a run of another domain or model is a one-line ConfigError before anything is
    built (see :func:`check_run`).
    """
    state = load_state(path, device) if is_source(path) else ckpt.load(find_checkpoint(path), map_location=device)
    if "config" not in state or not isinstance(state["config"], dict):
        raise ConfigError(f"{path}: not an ostinato checkpoint (no config inside); expected a run directory "
                          "or .pt written by `ostinato train`")
    check_run(state["config"], path, expect_domain, verb, expect_model)
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

