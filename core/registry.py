"""Explicit registries for models and datasets.

A model builder is a function ``builder(cfg) -> nn.Module`` whose single argument is an
instance of a typed dataclass config. Registering it records the name, the domain (taken
from the defining module, ``ostinato.<domain>...``), the config class and a one-line
description (the builder's docstring unless given). Names are global and unique: a
duplicate raises.

    @register_model("sasrec", config=SASRecConfig)
    def sasrec(cfg: SASRecConfig) -> SASRec:
        '''SASRec with the paper's defaults (Kang & McAuley, 2018).'''
        return SASRec(cfg)

    model = create_model("sasrec", n_items=100, d_model=64)

A builder that only calls the model, ``return SASRec(cfg)``, can be the model itself:
``register_variant("test_sasrec", TestSASRecConfig, SASRec, "Tiny SASRec for tests.")``.

Datasets use the same mechanism (``register_dataset``); their builder has the signature
``builder(cfg, data_root: Path | None) -> DataBundle``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "model" | "dataset"
    domain: str
    builder: Callable[..., Any]
    config: type
    description: str
    # (B, L, D) sequence mixers only (what a mixer slot may hold): True / False, or cfg -> bool where a
    # config field decides (attention's ``causal``, S5's ``bidirectional``); None: not a sequence mixer
    causal: Any = None


_REGISTRIES: dict[str, dict[str, Entry]] = {"model": {}, "dataset": {}}

# Importing a domain fills the registry; which modules those are is the business of
# ``ostinato.core.domain`` (the entry points), which sits above the registry. It installs its
# loader here (``set_loader``), so a lookup loads the domains first without the registry
# importing the module that imports every layer: the imports stay one-way, no cycle.
_loader: Callable[[], dict[str, str]] | None = None


def set_loader(fn: Callable[[], dict[str, str]]) -> None:
    """``fn()`` imports every domain (once) and returns {domain: why it failed to import}."""
    global _loader
    _loader = fn


def _load() -> dict[str, str]:
    return _loader() if _loader is not None else {}


def _domain_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ostinato" else parts[0]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def _register(kind: str, name: str, config: type, domain: str | None, description: str | None, causal: Any = None):
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"register_{kind}({name!r}): config must be a dataclass, got {config!r}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        reg = _REGISTRIES[kind]
        if name in reg:
            old = reg[name]
            raise ValueError(
                f"{kind} {name!r} is already registered by {old.builder.__module__}.{old.builder.__qualname__}"
            )
        reg[name] = Entry(
            name=name,
            kind=kind,
            domain=domain or _domain_of(fn.__module__),
            builder=fn,
            config=config,
            description=description or _first_line(fn.__doc__),
            causal=causal,
        )
        return fn

    return deco


def register_model(name: str, *, config: type, domain: str | None = None, description: str | None = None,
                   causal: bool | Callable[[Any], bool] | None = None):
    """Decorator: register ``builder(cfg) -> nn.Module`` under ``name``. Duplicates raise.

    ``causal`` marks a (B, L, D) sequence mixer that a mixer slot may hold (``ostinato.core.mixer``):
    True when ``y[:, :t]`` never depends on ``x[:, t:]``, False when it may, or a function of the
    config where a field decides; None (the default) for everything else."""
    return _register("model", name, config, domain, description, causal)


def register_variant(name: str, config: type, model: Callable[..., Any], description: str, *,
                     causal: bool | Callable[[Any], bool] | None = None) -> None:
    """Register a model whose builder is ``model(cfg)`` itself, most often the model class.

    A variant is a config subclass with other defaults; it needs no builder function of its
    own. The domain is that of the module defining ``model``; ``causal`` as in :func:`register_model`.
    """
    register_model(name, config=config, description=description, causal=causal)(model)


def register_dataset(name: str, *, config: type, domain: str | None = None, description: str | None = None):
    """Decorator: register ``builder(cfg, data_root) -> DataBundle`` under ``name``."""
    return _register("dataset", name, config, domain, description)


def _lookup(kind: str, name: str) -> Entry:
    broken = _load()
    reg = _REGISTRIES[kind]
    if name not in reg:
        close = [n for n in reg if name.lower() in n.lower() or n.lower() in name.lower()]
        hint = f"; similar: {', '.join(sorted(close)[:5])}" if close else ""
        if broken:
            hint += "; domains that failed to import: " + "; ".join(f"{d} ({r})" for d, r in broken.items())
        raise ConfigError(f"unknown {kind} {name!r}{hint}; see `ostinato ls {kind}s`")
    return reg[name]


def get_model(name: str) -> Entry:
    return _lookup("model", name)


def get_dataset(name: str) -> Entry:
    return _lookup("dataset", name)


def make_config(entry: Entry, overrides: dict[str, Any] | None = None, where: str = ""):
    """Build ``entry.config`` from a dict of overrides, validating keys, types and ranges."""
    from .config import DATA_RANGES, MODEL_RANGES, from_dict

    ranges = MODEL_RANGES if entry.kind == "model" else DATA_RANGES
    return from_dict(entry.config, overrides or {}, where=where or entry.kind, name_ranges=ranges)


def create_model(name: str, pretrained: Any = False, **overrides: Any):
    """Build a registered model; keyword overrides are fields of its config dataclass.

    ``pretrained=True`` loads the shipped weights of model ``name`` (or of the recipe ``name``,
    ``create_model("timeseries/dlinear_etth1", pretrained=True)``); a string picks the source:
    a recipe, a folder in the Hub layout or ``hf:<owner>/<repo>`` (:mod:`ostinato.core.pretrained`).
    The weights fix the config, so no overrides then; the model comes back in eval mode."""
    if pretrained is not False and pretrained is not None:
        if overrides:
            raise ConfigError(f"create_model({name!r}, pretrained=...): the weights fix the config; "
                              f"drop the overrides ({', '.join(sorted(overrides))})")
        from .pretrained import for_model

        try:
            return model_from_state(for_model(name, pretrained))
        except ConfigError as e:
            _load()
            own = name in _REGISTRIES["model"] and "pretrained" in {f.name for f in dataclasses.fields(get_model(name).config)}
            if not own:
                raise
            raise ConfigError(f"{e}. (The config field `pretrained` of {name}, its encoder's own weights, is set "
                              "with model.pretrained=true in a recipe, or make_config + the builder)") from None
    entry = get_model(name)
    return entry.builder(make_config(entry, overrides, where=f"model {name}"))


def model_from_state(state: dict[str, Any]):
    """The model of a checkpoint-like dict (``config`` with the model's section, ``model`` state
    dict), weights loaded, in eval mode."""
    section = dict(state["config"].get("model") or {})
    name = str(section.pop("name", ""))
    entry = get_model(name)
    model = entry.builder(make_config(entry, section, where="model"))
    model.load_state_dict(state["model"])
    return model.eval()


def is_test_variant(name: str) -> bool:
    """The tiny ``test_*`` variant each model file ends with, for the tests (hidden by ``ls`` unless ``--all``)."""
    return name.startswith("test_")


def name_matches(name: str, pattern: str | None) -> bool:
    """``pattern`` is a glob when it has ``*?[``, otherwise a substring; None matches all."""
    if pattern is None:
        return True
    return fnmatch.fnmatch(name, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")


def _list(kind: str, domain: str | None, pattern: str | None) -> list[Entry]:
    _load()
    out = []
    for e in sorted(_REGISTRIES[kind].values(), key=lambda e: (e.domain, e.name)):
        if domain is not None and e.domain != domain:
            continue
        if not name_matches(e.name, pattern):
            continue
        out.append(e)
    return out


def list_models(domain: str | None = None, pattern: str | None = None) -> list[Entry]:
    """Registered models, optionally filtered by domain and a glob/substring pattern."""
    return _list("model", domain, pattern)


def list_datasets(domain: str | None = None, pattern: str | None = None) -> list[Entry]:
    return _list("dataset", domain, pattern)
